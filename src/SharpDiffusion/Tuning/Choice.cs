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

/// <summary>One fast-path choice, where it came from, the measurement behind it (empty unless measured), and why the
/// measurement chose it ("measured", "roofline", "default"; empty unless measured).</summary>
public sealed record Choice<T>(T Value, ChoiceSource Source, string Detail = "", string Basis = "")
{
    public override string ToString()
    {
        string source = Source.ToString().ToLowerInvariant() + (Basis.Length == 0 ? "" : $", by {Basis}");
        return Detail.Length == 0 ? $"{Value} ({source})" : $"{Value} ({source}: {Detail})";
    }
}
