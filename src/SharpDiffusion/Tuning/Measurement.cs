namespace SharpDiffusion.Tuning;

/// <summary>The candidate that won a micro-benchmark and the timings that made it win.</summary>
public sealed record Measurement<T>(T Winner, string Detail);
