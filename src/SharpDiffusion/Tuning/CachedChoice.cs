namespace SharpDiffusion.Tuning;

/// <summary>A stored choice: its value ("nchw", "sdpa", …), the timings it was chosen on, and why it won
/// (<see cref="LayoutDecision.Measured"/>, <see cref="LayoutDecision.Roofline"/> or <see cref="LayoutDecision.Default"/>;
/// null in files written before the basis was recorded).</summary>
public sealed record CachedChoice(string Value, string Detail, string? Basis = null);
