namespace SharpDiffusion.Diagnostics;

/// <summary>
/// Where a process's resident memory peaked: a background thread reads the resident size (VmRSS) every
/// <c>interval</c> with what <c>describe</c> says the process is doing then (e.g. which weights are in memory). The kernel's own peak (VmHWM) stays the exact figure; a peak shorter than the interval may be missed
/// here, so the place is that of the highest sample. The highest sample under each description is kept too, so a
/// report can show what each stage needed (<see cref="PeaksByPlace"/>).
/// </summary>
public sealed class PeakLocator : IDisposable
{
    readonly Func<string> _describe;
    readonly Thread _thread;
    readonly TimeSpan _interval;
    volatile bool _stop;

    public PeakLocator(Func<string> describe, TimeSpan? interval = null)
    {
        (_describe, _interval) = (describe, interval ?? TimeSpan.FromMilliseconds(20));
        _thread = new Thread(Run) { IsBackground = true, Name = "PeakLocator" };
        _thread.Start();
    }

    /// <summary>The highest resident size sampled, in bytes.</summary>
    public long PeakSampleBytes { get; private set; }

    /// <summary>What <c>describe</c> said at the highest sample.</summary>
    public string Where { get; private set; } = "";

    /// <summary>The resident size at the last sample, in bytes.</summary>
    public long LastSampleBytes { get; private set; }

    readonly Dictionary<string, long> _byPlace = [];

    /// <summary>The highest sample under each description, in the order the descriptions first came (e.g. per stage).</summary>
    public IReadOnlyList<(string Where, long Bytes)> PeaksByPlace
    {
        get { lock (_byPlace) return _byPlace.Select(kv => (kv.Key, kv.Value)).ToList(); }
    }

    void Run()
    {
        while (!_stop)
        {
            Sample();
            Thread.Sleep(_interval);
        }
    }

    void Sample()
    {
        long rss = ProcessMemory.ResidentBytes ?? 0;
        string where = _describe();
        lock (_byPlace)
        {
            LastSampleBytes = rss;
            if (rss > _byPlace.GetValueOrDefault(where)) _byPlace[where] = rss;
            if (rss > PeakSampleBytes) (PeakSampleBytes, Where) = (rss, where);
        }
    }

    public void Dispose()
    {
        if (_stop) return;
        _stop = true;
        _thread.Join();
        Sample(); // the state at the end counts too
    }
}
