namespace SharpDiffusion.Diagnostics;

/// <summary>Resident memory of this process as Linux reports it (/proc/self/status).</summary>
public static class ProcessMemory
{
    /// <summary>Peak resident set size (VmHWM) in bytes since start or the last <see cref="ResetPeak"/>; null off Linux.</summary>
    public static long? PeakResidentBytes => Read("VmHWM:");

    /// <summary>Current resident set size (VmRSS) in bytes.</summary>
    public static long? ResidentBytes => Read("VmRSS:");

    /// <summary>Resets the peak to the current resident size (writes 5 to /proc/self/clear_refs).</summary>
    public static bool ResetPeak()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    static long? Read(string key)
    {
        const string status = "/proc/self/status";
        if (!File.Exists(status)) return null;
        foreach (var line in File.ReadLines(status))
            if (line.StartsWith(key, StringComparison.Ordinal))
                return long.Parse(line[key.Length..].Trim().Split(' ')[0]) * 1024; // kB
        return null;
    }
}
