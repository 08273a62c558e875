namespace SharpDiffusion.Tuning;

/// <summary>A stored choice: its value ("nchw", "sdpa", …) and the timings it was chosen on.</summary>
public sealed record CachedChoice(string Value, string Detail);
