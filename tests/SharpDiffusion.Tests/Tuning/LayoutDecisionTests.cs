using SharpDiffusion.Tuning;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Tuning;

/// <summary>The layout rule of issue 24: a block micro-benchmark decides only on a clear, repeated win; a tie goes to the
/// conv roofline, and a roofline tie to channels-last. Timings are injected, so nothing here depends on this CPU.</summary>
public class LayoutDecisionTests
{
    static readonly MachineKey Machine = new("Test CPU 9000", "libtorch 0.0, TorchSharp 0.0", 2);
    static readonly Device Cpu = new("cpu");

    // The issue's bf16 run: ResNet block 22.6 ms in both layouts; 3×3 conv at 274 GFLOP/s NCHW and 783 channels-last.
    static readonly LayoutDecision.Timings IssueBlockTie = new(0.0226, 0.0226);
    static readonly LayoutDecision.Timings IssueRoofline = new(ConvSeconds(274), ConvSeconds(783));

    // Seconds of the roofline's 3×3 conv (2×320×32×32, 320 out) at a rate: what the bench's GFLOP/s figures mean in time.
    static double ConvSeconds(double gflops) => 2.0 * 2 * 320 * 32 * 32 * 320 * 9 / (gflops * 1e9);

    /// <summary>Timings handed out in order, each call counted.</summary>
    sealed class Script(params LayoutDecision.Timings[] timings)
    {
        public int Calls { get; private set; }
        public LayoutDecision.Timings Next(ScalarType _) => timings[Math.Min(Calls++, timings.Length - 1)];
    }

    static FastPaths Paths(string? folder, Script block, Script conv) =>
        new(folder, machine: Machine) { BlockTimingsOverride = block.Next, ConvTimingsOverride = conv.Next };

    [Fact]
    public void A_block_tie_takes_the_layout_the_conv_roofline_prefers()
    {
        var (block, conv) = (new Script(IssueBlockTie), new Script(IssueRoofline));
        var choice = Paths(null, block, conv).ChannelsLast(ScalarType.BFloat16, Cpu);
        Assert.Equal((true, ChoiceSource.Measured, LayoutDecision.Roofline), (choice.Value, choice.Source, choice.Basis));
        Assert.Equal((1, 1), (block.Calls, conv.Calls));
        Assert.Contains("22.6 ms", choice.Detail);

        // The roofline decides whichever way it points, not only towards the default.
        var nchw = Paths(null, new Script(IssueBlockTie), new Script(IssueRoofline with { Nchw = IssueRoofline.ChannelsLast / 2 }))
            .ChannelsLast(ScalarType.BFloat16, Cpu);
        Assert.Equal((false, LayoutDecision.Roofline), (nchw.Value, nchw.Basis));
    }

    [Theory]
    [InlineData(0.0300, 0.0200, true)]
    [InlineData(0.0200, 0.0300, false)]
    public void A_clear_win_repeated_picks_the_winner_without_the_roofline(double nchw, double channelsLast, bool expected)
    {
        var (block, conv) = (new Script(new LayoutDecision.Timings(nchw, channelsLast)), new Script(IssueRoofline));
        var choice = Paths(null, block, conv).ChannelsLast(ScalarType.Float32, Cpu);
        Assert.Equal((expected, LayoutDecision.Measured), (choice.Value, choice.Basis));
        Assert.Equal((2, 0), (block.Calls, conv.Calls));
    }

    [Fact]
    public void A_win_the_repeat_does_not_confirm_goes_to_the_roofline()
    {
        var clearNchw = new LayoutDecision.Timings(0.020, 0.030);
        var (block, conv) = (new Script(clearNchw, IssueBlockTie), new Script(IssueRoofline));
        var choice = Paths(null, block, conv).ChannelsLast(ScalarType.BFloat16, Cpu);
        Assert.Equal((true, LayoutDecision.Roofline), (choice.Value, choice.Basis));
        Assert.Contains("not repeated", choice.Detail);
    }

    [Fact]
    public void Two_ties_keep_channels_last_the_default()
    {
        double margin = MicroBenchmarks.Margin;
        // NCHW ahead in both, but by less than the margin: noise, not a win.
        var nearTie = new LayoutDecision.Timings(1.0, 1.0 / (1 - margin / 2));
        var choice = Paths(null, new Script(nearTie), new Script(nearTie)).ChannelsLast(ScalarType.BFloat16, Cpu);
        Assert.Equal((FastPaths.DefaultChannelsLast, LayoutDecision.Default), (choice.Value, choice.Basis));
    }

    [Fact]
    public void The_basis_is_saved_and_a_layout_cached_without_one_is_measured_again()
    {
        using var dir = new TempDir();
        var cache = new FastPathCache(dir.Path);
        // What the older tuner stored for the issue's machine: NCHW from the block tie, no basis.
        cache.Save(Machine, "layout bfloat16", new CachedChoice("nchw", "NCHW 22.6 ms, channels-last 22.6 ms per ResNet block"));
        var (block, conv) = (new Script(IssueBlockTie), new Script(IssueRoofline));
        var choice = Paths(dir.Path, block, conv).ChannelsLast(ScalarType.BFloat16, Cpu);
        Assert.Equal((true, ChoiceSource.Measured), (choice.Value, choice.Source));
        var stored = cache.Read(Machine)["layout bfloat16"];
        Assert.Equal(("channels-last", LayoutDecision.Roofline), (stored.Value, stored.Basis));

        var next = new Script(new LayoutDecision.Timings(0.010, 0.030)); // would pick NCHW if asked
        var cached = Paths(dir.Path, next, next).ChannelsLast(ScalarType.BFloat16, Cpu);
        Assert.Equal((true, ChoiceSource.Cached, LayoutDecision.Roofline), (cached.Value, cached.Source, cached.Basis));
        Assert.Equal(0, next.Calls);
    }

    [Fact]
    public void The_basis_is_printed_with_the_choice()
    {
        var choice = Paths(null, new Script(IssueBlockTie), new Script(IssueRoofline)).ChannelsLast(ScalarType.BFloat16, Cpu);
        string line = global::SharpDiffusion.Cli.Bench.FastPathAB.Describe("layout", choice, l => l ? "channels-last" : "NCHW");
        Assert.StartsWith("layout: channels-last (measured now, by the conv roofline: ResNet block NCHW 22.6 ms", line);
        Assert.Contains("by roofline", choice.ToString());
    }

    [Fact]
    public void Bench_says_how_to_override_a_layout_that_whole_steps_clearly_contradict()
    {
        // The issue's bf16 steps: NCHW in use at 7.88 s against 6.35 s channels-last (e99a642's layout).
        var slower = new global::SharpDiffusion.Cli.Bench.FastPathAB.Result("layout", "NCHW", 7.88, "channels-last", 6.35, "NCHW");
        Assert.Contains("--channels-last true", global::SharpDiffusion.Cli.Bench.FastPathAB.LayoutAdvice([slower]));
        Assert.Null(global::SharpDiffusion.Cli.Bench.FastPathAB.LayoutAdvice([slower with { InUse = "channels-last" }]));
        Assert.Null(global::SharpDiffusion.Cli.Bench.FastPathAB.LayoutAdvice([slower with { SecondsA = 6.40 }])); // within the margin
        Assert.Null(global::SharpDiffusion.Cli.Bench.FastPathAB.LayoutAdvice([]));
    }

    [Fact]
    public void The_real_conv_roofline_times_both_layouts()
    {
        var t = MicroBenchmarks.LayoutConv(ScalarType.Float32);
        Assert.True(t.Nchw > 0 && t.ChannelsLast > 0, $"{t}");
    }
}
