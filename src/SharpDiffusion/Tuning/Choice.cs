namespace SharpDiffusion.Tuning;

/// <summary>Where a fast-path choice came from.</summary>
public enum ChoiceSource
{
    /// <summary>The built-in default: tuning is off, or there is nothing to measure for this dtype or device.</summary>
    Default,
    /// <summary>The caller chose (the load options, a CLI flag, an environment variable).</summary>
    Forced,
    /// <summary>Measured on this machine in an earlier run and read from the cache file.</summary>
    Cached,
    /// <summary>Measured in this process.</summary>
    Measured,
}

/// <summary>One fast-path choice, where it came from, and the measurement behind it (empty unless measured).</summary>
public sealed record Choice<T>(T Value, ChoiceSource Source, string Detail = "")
{
    public override string ToString() => Detail.Length == 0
        ? $"{Value} ({Source.ToString().ToLowerInvariant()})"
        : $"{Value} ({Source.ToString().ToLowerInvariant()}: {Detail})";
}
