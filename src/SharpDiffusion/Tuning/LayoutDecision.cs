namespace SharpDiffusion.Tuning;

/// <summary>
/// How the conv layout is chosen from timings, by <see cref="PairDecision"/>'s rule: a ResNet-block micro-benchmark
/// decides only on a clear, repeated win; otherwise the conv roofline (a bare 3×3 conv per layout; convs are most of a
/// step's FLOPs), and when that ties too, channels-last, the default. Issue 24: a block tie (22.6 ms against 22.6 ms)
/// chose NCHW for bf16 while the same machine's bf16 convs ran 783 GFLOP/s channels-last and 274 GFLOP/s NCHW, and
/// whole UNet steps were 1.25-1.41× slower.
/// </summary>
public static class LayoutDecision
{
    /// <summary>Why a choice was made: a clear, repeated micro-benchmark; the roofline kernel after a tie; or the default.</summary>
    public const string Measured = "measured", Roofline = "roofline", Default = "default";

    /// <summary>Seconds per call of the same work in each layout.</summary>
    public sealed record Timings(double Nchw, double ChannelsLast);

    static PairDecision.Timed Timed(string what, Timings t) => new(what, t.Nchw, t.ChannelsLast);

    static readonly PairDecision.Candidates Layouts = new("nchw", "NCHW", "channels-last", "channels-last", DefaultIsB: FastPaths.DefaultChannelsLast);

    /// <summary>True: channels-last is clearly faster; false: NCHW is; null: within the margin (a tie).</summary>
    public static bool? Winner(Timings t, double margin = MicroBenchmarks.Margin) => PairDecision.BFaster(t.Nchw, t.ChannelsLast, margin);

    /// <summary>The layout choice ("channels-last" or "nchw") with its basis and the timings behind it. Each timing
    /// runs only when the one before could not decide.</summary>
    public static CachedChoice Decide(Func<Timings> block, Func<Timings> conv) => PairDecision.Decide(Layouts,
        () => Timed("ResNet block", block()),
        () => Timed("3x3 conv", conv()));
}
