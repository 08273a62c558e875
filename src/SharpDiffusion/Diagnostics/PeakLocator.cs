namespace SharpDiffusion.Diagnostics;

/// <summary>
/// Where a process's resident memory peaked: a background thread reads the resident size (VmRSS) every
/// <c>interval</c> and, at each new maximum, asks <c>describe</c> what the process is doing then (e.g. which weights are
/// in memory). The kernel's own peak (VmHWM) stays the exact figure; a peak shorter than the interval may be missed
/// here, so the place is that of the highest sample.
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
        if (rss <= PeakSampleBytes) return;
        string where = _describe();
        lock (_thread) (PeakSampleBytes, Where) = (rss, where);
    }

    public void Dispose()
    {
        _stop = true;
        _thread.Join();
        Sample(); // the state at the end counts too
    }
}
