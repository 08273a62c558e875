namespace SharpDiffusion.Tuning;

/// <summary>
/// How the conv layout is chosen from timings. A ResNet-block micro-benchmark decides only when it is clear: one
/// layout faster by more than <see cref="MicroBenchmarks.Margin"/>, twice in a row (noise on a shared 2-core machine
/// reaches a few percent, rarely the same way twice). Otherwise the conv roofline decides (a bare 3×3 conv per layout;
/// convs are most of a step's FLOPs), and when that ties too, channels-last, the default. Issue 24: a block tie
/// (22.6 ms against 22.6 ms) chose NCHW for bf16 while the same machine's bf16 convs ran 783 GFLOP/s channels-last
/// and 274 GFLOP/s NCHW, and whole UNet steps were 1.25-1.41× slower.
/// </summary>
public static class LayoutDecision
{
    /// <summary>Why a choice was made: a clear, repeated block timing; the conv roofline after a block tie; or the default.</summary>
    public const string Measured = "measured", Roofline = "roofline", Default = "default";

    /// <summary>Seconds per call of the same work in each layout.</summary>
    public sealed record Timings(double Nchw, double ChannelsLast);

    /// <summary>True: channels-last is clearly faster; false: NCHW is; null: within the margin (a tie).</summary>
    public static bool? Winner(Timings t, double margin = MicroBenchmarks.Margin) =>
        t.ChannelsLast < t.Nchw * (1 - margin) ? true : t.Nchw < t.ChannelsLast * (1 - margin) ? false : null;

    /// <summary>The layout choice ("channels-last" or "nchw") with its basis and the timings behind it. Each timing
    /// runs only when the one before could not decide.</summary>
    public static CachedChoice Decide(Func<Timings> block, Func<Timings> conv)
    {
        var first = block();
        string detail = $"ResNet block NCHW {MicroBenchmarks.Ms(first.Nchw)}, channels-last {MicroBenchmarks.Ms(first.ChannelsLast)}";
        if (Winner(first) is bool clear)
        {
            var again = block();
            detail += $", again {MicroBenchmarks.Ms(again.Nchw)} and {MicroBenchmarks.Ms(again.ChannelsLast)}";
            if (Winner(again) == clear) return new(Name(clear), detail, Measured);
            detail += " (not repeated)";
        }
        else detail += $" (within {MicroBenchmarks.Margin:P0})";

        var roofline = conv();
        detail += $"; 3x3 conv NCHW {MicroBenchmarks.Ms(roofline.Nchw)}, channels-last {MicroBenchmarks.Ms(roofline.ChannelsLast)}";
        if (Winner(roofline) is bool faster) return new(Name(faster), detail, Roofline);
        return new(Name(FastPaths.DefaultChannelsLast), detail + $" (within {MicroBenchmarks.Margin:P0})", Default);
    }

    static string Name(bool channelsLast) => channelsLast ? "channels-last" : "nchw";
}
