namespace SharpDiffusion.Tuning;

/// <summary>The candidate that won a micro-benchmark, the timings that made it win, and whether the win was clear (beyond
/// <see cref="MicroBenchmarks.Margin"/>) or a tie that kept the default.</summary>
public sealed record Measurement<T>(T Winner, string Detail, bool Clear);
