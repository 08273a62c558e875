namespace SharpDiffusion.Tuning;

/// <summary>The CPU's feature flags as Linux lists them ("flags : fpu … avx2 … avx512_bf16 …" in /proc/cpuinfo).</summary>
public static class CpuFlags
{
    static readonly Lazy<IReadOnlySet<string>> Cached = new(() => Read("/proc/cpuinfo"));

    /// <summary>This machine's flags, read once; empty where there is no /proc/cpuinfo (Windows, macOS) or it cannot be read.</summary>
    public static IReadOnlySet<string> Current() => Cached.Value;

    /// <summary>The flags of the first "flags" line of a cpuinfo file (every core lists the same); empty if none.</summary>
    public static IReadOnlySet<string> Read(string cpuinfo)
    {
        try
        {
            if (File.Exists(cpuinfo))
                foreach (var line in File.ReadLines(cpuinfo))
                    if (line.StartsWith("flags", StringComparison.Ordinal) && line.Split(':', 2) is [_, var list])
                        return Parse(list);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        return new HashSet<string>();
    }

    /// <summary>A space-separated flag list as a set (lower case, as the kernel writes them).</summary>
    public static IReadOnlySet<string> Parse(string list) =>
        list.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(f => f.ToLowerInvariant()).ToHashSet();
}
