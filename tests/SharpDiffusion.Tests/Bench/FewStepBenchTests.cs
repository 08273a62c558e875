using System.Globalization;
using SharpDiffusion.Cli;
using SharpDiffusion.Cli.Bench;
using SharpDiffusion.Loading;
using Xunit.Abstractions;

namespace SharpDiffusion.Tests.Bench;

/// <summary>
/// `bench --fewstep`'s rows and table (issue 25 item 5) on the golden small-sd15 with the golden tiny-taesd at 64×64: the same
/// code that times the full-size models, measured twice here, once with the Euler reference run whole and once with
/// 2 of its steps timed and extrapolated. What the hooks count (UNet calls, FLOPs) is exact, so the extrapolated row is
/// checked against the whole run; the seconds are the machine's and only their bookkeeping is checked.
/// </summary>
public class FewStepBenchTests(FewStepBenchTests.Measured measured, ITestOutputHelper output) : IClassFixture<FewStepBenchTests.Measured>
{
    const int Size = 64, FewSteps = 4, ReferenceSteps = 6, TimedReferenceSteps = 2, Interval = 2;

    public sealed class Measured
    {
        public List<FewStepRow> Whole { get; } = Measure(ReferenceSteps);
        public List<FewStepRow> Partial { get; } = Measure(TimedReferenceSteps);

        static List<FewStepRow> Measure(int timed) => FewStepBench.Measure(Golden.Path("models", "small-sd15"), Golden.Path("v3", "models", "tiny-taesd"),
            new LoadOptions(), FewStepSettings.From(Size, Size, FewSteps, ReferenceSteps, timed, Interval));
    }

    [Fact]
    public void Each_recipe_makes_the_unet_calls_it_should()
    {
        var rows = measured.Whole;
        foreach (var line in FewStepRow.Table(rows, null, Size, Size, "float32")) output.WriteLine(line);
        Assert.Equal(FewStepRecipe.Standard(FewStepSettings.From(Size, Size, FewSteps, ReferenceSteps, null, Interval)).Select(r => r.Name), rows.Select(r => r.Recipe));
        var (reference, lcm, deepCache, turbo) = (rows[0], rows[1], rows[2], rows[3]);
        Assert.Equal((true, ReferenceSteps, 0, "VAE"), (reference.Cfg, reference.FullCalls, reference.ShallowCalls, reference.Decoder));
        Assert.Equal((false, FewSteps, 0, "TAESD"), (lcm.Cfg, lcm.FullCalls, lcm.ShallowCalls, lcm.Decoder));
        int full = (FewSteps + Interval - 1) / Interval; // steps 0, 2, ... are full passes
        Assert.Equal((false, full, FewSteps - full), (deepCache.Cfg, deepCache.FullCalls, deepCache.ShallowCalls));
        Assert.Equal((false, 1, 0, 1), (turbo.Cfg, turbo.FullCalls, turbo.ShallowCalls, turbo.Steps));
        Assert.All(rows, r => Assert.False(r.Extrapolated));
        Assert.All(rows, r => Assert.True(r.TextSeconds > 0 && r.DenoiseSeconds > 0 && r.DecodeSeconds > 0, $"{r.Recipe}: every part took time"));
    }

    [Fact]
    public void Flops_follow_the_calls_batch_and_decoder()
    {
        var (reference, lcm, deepCache, turbo) = (measured.Whole[0], measured.Whole[1], measured.Whole[2], measured.Whole[3]);
        long call = lcm.UNetFlops / lcm.FullCalls;
        Assert.Equal(lcm.UNetFlops, call * lcm.FullCalls);
        Assert.Equal(2 * call, reference.UNetFlops / reference.FullCalls); // the CFG batch of 2
        Assert.Equal(call, turbo.UNetFlops);
        long shallow = (deepCache.UNetFlops - deepCache.FullCalls * call) / deepCache.ShallowCalls;
        output.WriteLine($"UNet call {call} FLOPs, DeepCache's shallow call {shallow} ({(double)shallow / call:P0})");
        Assert.InRange(shallow, 1, call - 1);
        // The TAESD recipes encode one prompt and decode with the same TAESD; the reference encodes two and decodes with the VAE.
        Assert.Equal(lcm.OtherFlops, deepCache.OtherFlops);
        Assert.Equal(lcm.OtherFlops, turbo.OtherFlops);
        Assert.NotEqual(lcm.OtherFlops, reference.OtherFlops);
    }

    [Fact]
    public void The_extrapolated_reference_has_the_whole_runs_calls_and_flops()
    {
        var whole = measured.Whole[0];
        var partial = measured.Partial[0];
        Assert.True(partial.Extrapolated);
        Assert.Equal((ReferenceSteps, TimedReferenceSteps), (partial.Steps, partial.TimedSteps));
        Assert.Equal((whole.FullCalls, whole.ShallowCalls, whole.UNetFlops, whole.OtherFlops),
            (partial.FullCalls, partial.ShallowCalls, partial.UNetFlops, partial.OtherFlops));
        // The denoising is the timed steps' seconds scaled; text and decode stay as measured.
        Assert.Equal(partial.TimedDenoiseSeconds * ReferenceSteps / TimedReferenceSteps, partial.DenoiseSeconds, 9);
        Assert.Equal(partial.TextSeconds + partial.DenoiseSeconds + partial.DecodeSeconds, partial.TotalSeconds, 9);
        output.WriteLine($"reference denoise: whole {whole.DenoiseSeconds:F3}s, extrapolated from {TimedReferenceSteps} steps {partial.DenoiseSeconds:F3}s");
        Assert.All(measured.Partial.Skip(1), r => Assert.False(r.Extrapolated));
    }

    [Fact]
    public void A_deep_cache_row_is_not_extrapolated()
    {
        var deepCache = measured.Whole[2];
        var error = Assert.Throws<InvalidOperationException>(() => deepCache.ExtrapolatedTo(2 * FewSteps));
        Assert.Contains("DeepCache", error.Message);
        Assert.Same(deepCache, deepCache.ExtrapolatedTo(deepCache.Steps));
    }

    [Fact]
    public void The_table_marks_the_extrapolated_row_and_gives_the_roofline_bound()
    {
        var rows = measured.Partial;
        var rates = new Roofline.Rates(Conv: 0, Matmul: 50);
        var lines = FewStepRow.Table(rows, rates, Size, Size, "float32");
        foreach (var line in lines) output.WriteLine(line);
        Assert.Contains("| UNet calls (full/shallow) |", lines[1]);
        Assert.Contains("| at matmul rate s |", lines[1]);
        var cells = rows.Select(r => lines.Single(l => l.StartsWith($"| {r.Recipe} |", StringComparison.Ordinal))
            .Split('|', StringSplitOptions.TrimEntries)[1..^1]).ToList();
        for (int i = 0; i < rows.Count; i++)
        {
            var (r, c) = (rows[i], cells[i]);
            Assert.Equal($"{r.FullCalls}/{r.ShallowCalls}", c[3]);
            Assert.Equal(r.TotalSeconds.ToString("F1", CultureInfo.InvariantCulture) + (r.Extrapolated ? " extrapolated" : ""), c[8]);
            Assert.Equal((r.Flops / (rates.Matmul * 1e9)).ToString("F1", CultureInfo.InvariantCulture), c[10]);
        }
        Assert.Contains(lines, l => l.StartsWith("extrapolated: ", StringComparison.Ordinal) && l.Contains($"timed {TimedReferenceSteps} of its {ReferenceSteps} steps"));
        // Without a roofline (--skip-roofline) the bound is left out, not made up.
        var unbounded = FewStepRow.Table(rows, null, Size, Size, "float32");
        Assert.All(rows, r => Assert.EndsWith("| – |", unbounded.Single(l => l.StartsWith($"| {r.Recipe} |", StringComparison.Ordinal))));
        Assert.DoesNotContain(unbounded, l => l.StartsWith("at matmul rate:", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(4, 0, 2, "--fewstep-reference-steps")]
    [InlineData(4, 7, 2, "--fewstep-reference-steps")]
    [InlineData(4, null, 1, "--deep-cache")]
    [InlineData(0, null, 2, "--fewstep-steps")]
    public void Bad_fewstep_options_are_one_line_errors_before_any_work(int fewSteps, int? timed, int deepCache, string option)
    {
        var error = Assert.Throws<UsageException>(() => FewStepSettings.From(Size, Size, fewSteps, ReferenceSteps, timed, deepCache));
        Assert.StartsWith(option, error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }
}
