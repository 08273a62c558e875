using SharpDiffusion.Loading;
using SharpDiffusion.Models;
using SharpDiffusion.Tuning;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Tuning;

/// <summary>The linear kernel rule (issue 24 item 2, <see cref="PairDecision"/>'s, as the layout's): the linear-layer
/// micro-benchmark decides only on a clear, repeated win; a tie goes to the matmul roofline, and a roofline tie keeps
/// F.linear. Timings are injected, so nothing here depends on this CPU.</summary>
public class LinearDecisionTests
{
    static readonly MachineKey Machine = new("Test CPU 9000", "libtorch 0.0, TorchSharp 0.0", 2);
    static readonly Device Cpu = new("cpu");

    // The matmul roofline rates, as seconds of the tuner's [2048, 1024] × [1024 → 1024] product: AVX-512 EPYC MKL
    // sgemm 124 GFLOP/s against oneDNN (channels-last conv) 290; AVX2 EPYC 94 against 96 (a tie).
    static LinearDecision.Timings Roofline(double mkl, double oneDnn) => new(Seconds(mkl), Seconds(oneDnn));
    static double Seconds(double gflops) => 2.0 * 2048 * 1024 * 1024 / (gflops * 1e9);
    static readonly LinearDecision.Timings Avx512Roofline = Roofline(124, 290), Avx2Roofline = Roofline(94, 96);
    static readonly LinearDecision.Timings LayersTie = new(0.0500, 0.0500);

    /// <summary>Timings handed out in order, each call counted.</summary>
    sealed class Script(params LinearDecision.Timings[] timings)
    {
        public int Calls { get; private set; }
        public LinearDecision.Timings Next(ScalarType _) => timings[Math.Min(Calls++, timings.Length - 1)];
    }

    static FastPaths Paths(string? folder, Script layers, Script roofline, bool enabled = true) =>
        new(folder, enabled, Machine) { LinearTimingsOverride = layers.Next, LinearRooflineOverride = roofline.Next };

    [Theory]
    [InlineData(0.0500, 0.0300, LinearKernel.OneDnn)]
    [InlineData(0.0300, 0.0500, LinearKernel.Default)]
    public void A_clear_win_repeated_picks_the_winner_without_the_roofline(double mkl, double oneDnn, LinearKernel expected)
    {
        var (layers, roofline) = (new Script(new LinearDecision.Timings(mkl, oneDnn)), new Script(Avx2Roofline));
        var choice = Paths(null, layers, roofline).Linear(ScalarType.Float32, Cpu);
        Assert.Equal((expected, ChoiceSource.Measured, LayoutDecision.Measured), (choice.Value, choice.Source, choice.Basis));
        Assert.Equal((2, 0), (layers.Calls, roofline.Calls));
        Assert.Contains("linear layers F.linear (MKL) ", choice.Detail);
    }

    [Fact]
    public void A_tie_takes_the_kernel_the_matmul_roofline_prefers()
    {
        var (layers, roofline) = (new Script(LayersTie), new Script(Avx512Roofline));
        var choice = Paths(null, layers, roofline).Linear(ScalarType.Float32, Cpu);
        Assert.Equal((LinearKernel.OneDnn, LayoutDecision.Roofline), (choice.Value, choice.Basis));
        Assert.Equal((1, 1), (layers.Calls, roofline.Calls));
        Assert.Contains("matmul roofline", choice.Detail);

        // Either way it points: MKL ahead on the roofline keeps F.linear, by the roofline.
        var mkl = Paths(null, new Script(LayersTie), new Script(Roofline(290, 124))).Linear(ScalarType.Float32, Cpu);
        Assert.Equal((LinearKernel.Default, LayoutDecision.Roofline), (mkl.Value, mkl.Basis));
    }

    [Fact]
    public void A_win_the_repeat_does_not_confirm_goes_to_the_roofline()
    {
        var (layers, roofline) = (new Script(new LinearDecision.Timings(0.050, 0.030), LayersTie), new Script(Avx2Roofline));
        var choice = Paths(null, layers, roofline).Linear(ScalarType.Float32, Cpu);
        Assert.Equal((LinearKernel.Default, LayoutDecision.Default), (choice.Value, choice.Basis));
        Assert.Contains("not repeated", choice.Detail);
    }

    [Fact]
    public void Two_ties_keep_F_linear_the_default()
    {
        // This machine's case: the layers within the margin, the roofline 94 against 96 GFLOP/s (2%).
        var choice = Paths(null, new Script(new LinearDecision.Timings(1.0, 1.0 / (1 - MicroBenchmarks.Margin / 2))), new Script(Avx2Roofline)).Linear(ScalarType.Float32, Cpu);
        Assert.Equal((FastPaths.DefaultLinear, ChoiceSource.Measured, LayoutDecision.Default), (choice.Value, choice.Source, choice.Basis));
        Assert.Equal(LinearKernel.Default, FastPaths.DefaultLinear);
    }

    [Fact]
    public void Tuning_off_other_dtypes_and_forced_kernels_measure_nothing()
    {
        var (layers, roofline) = (new Script(new LinearDecision.Timings(0.05, 0.01)), new Script(Avx512Roofline));
        var off = Paths(null, layers, roofline, enabled: false).Linear(ScalarType.Float32, Cpu);
        Assert.Equal((LinearKernel.Default, ChoiceSource.Default), (off.Value, off.Source));
        var paths = Paths(null, layers, roofline);
        foreach (var dtype in new[] { ScalarType.BFloat16, ScalarType.Float16 }) // the kernels differ only in float32
            Assert.Equal((LinearKernel.Default, ChoiceSource.Default), (paths.Linear(dtype, Cpu).Value, paths.Linear(dtype, Cpu).Source));
        var forced = paths.Linear(LinearKernel.OneDnn, ScalarType.Float32, Cpu);
        Assert.Equal((LinearKernel.OneDnn, ChoiceSource.Forced), (forced.Value, forced.Source));
        var loadOptions = new LoadOptions { Tuning = paths, Linear = LinearKernel.Default }.LinearChoice();
        Assert.Equal((LinearKernel.Default, ChoiceSource.Forced), (loadOptions.Value, loadOptions.Source));
        Assert.Equal((0, 0), (layers.Calls, roofline.Calls));
    }

    [Fact]
    public void The_choice_is_saved_and_read_back_by_the_next_process()
    {
        using var dir = new TempDir();
        var first = Paths(dir.Path, new Script(new LinearDecision.Timings(0.05, 0.03)), new Script(Avx2Roofline)).Linear(ScalarType.Float32, Cpu);
        Assert.Equal((LinearKernel.OneDnn, ChoiceSource.Measured), (first.Value, first.Source));
        var (layers, roofline) = (new Script(new LinearDecision.Timings(0.03, 0.05)), new Script(Avx2Roofline));
        var second = Paths(dir.Path, layers, roofline).Linear(ScalarType.Float32, Cpu);
        Assert.Equal((LinearKernel.OneDnn, ChoiceSource.Cached, LayoutDecision.Measured, first.Detail), (second.Value, second.Source, second.Basis, second.Detail));
        Assert.Equal((0, 0), (layers.Calls, roofline.Calls));
    }

    [Theory]
    [InlineData("default", LinearKernel.Default)]
    [InlineData("onednn", LinearKernel.OneDnn)]
    [InlineData(" OneDNN ", LinearKernel.OneDnn)]
    public void Names_parse_and_print_alike(string name, LinearKernel kernel)
    {
        Assert.Equal(kernel, LinearDecision.Parse(name));
        Assert.Equal(kernel, LinearDecision.Parse(LinearDecision.Name(kernel)));
        Assert.Null(LinearDecision.Parse("blas"));
    }
}
