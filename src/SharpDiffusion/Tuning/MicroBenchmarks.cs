using System.Diagnostics;
using System.Globalization;
using SharpDiffusion.Models;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpDiffusion.Tuning;

/// <summary>
/// Short A/B timings behind the fast-path choices, each about a second on a 2-core machine. The two candidates run
/// interleaved (a, b, a, b, …) so a neighbour's load hits both alike; a candidate wins only if its median is
/// <see cref="Margin"/> faster, so noise keeps the default (or, for the layout, what the conv roofline prefers).
/// </summary>
public static class MicroBenchmarks
{
    public const double Margin = 0.05;
    const double BudgetSeconds = 1.0;
    const int MaxRounds = 5;

    /// <summary>Seconds of the body of a ResnetBlock2D (GroupNorm, SiLU, 3×3 conv, twice, and the residual) at 320
    /// channels on 2×32×32, with NCHW and with channels-last tensors. Its two timings often tie within noise (GroupNorm
    /// and SiLU are memory-bound in either layout), so <see cref="LayoutDecision"/> falls back on <see cref="LayoutConv"/>.</summary>
    public static LayoutDecision.Timings LayoutBlock(ScalarType dtype)
    {
        using var mode = inference_mode();
        using var scope = NewDisposeScope();
        using var random = new Generator(0); // never the global stream a caller may have seeded
        const int c = 320, size = 32;
        var x = randn([2, c, size, size], generator: random).to(dtype);
        var w1 = (randn([c, c, 3, 3], generator: random) * 0.02).to(dtype);
        var w2 = (randn([c, c, 3, 3], generator: random) * 0.02).to(dtype);
        var gamma = ones(c).to(dtype);
        var beta = zeros(c).to(dtype);
        var (xCl, w1Cl, w2Cl) = (MemoryLayout.ToChannelsLast(x), MemoryLayout.ToChannelsLast(w1), MemoryLayout.ToChannelsLast(w2));
        void Block(Tensor input, Tensor a, Tensor b)
        {
            using var inner = NewDisposeScope();
            var h = F.conv2d(F.silu(F.group_norm(input, 32, gamma, beta, 1e-5)), a, beta, padding: [1, 1]);
            h = F.conv2d(F.silu(F.group_norm(h, 32, gamma, beta, 1e-5)), b, beta, padding: [1, 1]);
            _ = h + input;
        }
        var (nchw, channelsLast) = Compare(() => Block(x, w1, w2), () => Block(xCl, w1Cl, w2Cl));
        return new(nchw, channelsLast);
    }

    /// <summary>Seconds of the conv roofline per layout: one 3×3 conv, 320→320 channels on 2×320×32×32 (the UNet's
    /// commonest conv; 32×32 keeps it short where a dtype is emulated), NCHW and channels-last. Convs are most of a
    /// UNet step's FLOPs, so their rate is what a whole step follows.</summary>
    public static LayoutDecision.Timings LayoutConv(ScalarType dtype)
    {
        using var mode = inference_mode();
        using var scope = NewDisposeScope();
        using var random = new Generator(0);
        const int c = 320, size = 32;
        var x = randn([2, c, size, size], generator: random).to(dtype);
        var w = (randn([c, c, 3, 3], generator: random) * 0.02).to(dtype);
        var b = zeros(c).to(dtype);
        var (xCl, wCl) = (MemoryLayout.ToChannelsLast(x), MemoryLayout.ToChannelsLast(w));
        var (nchw, channelsLast) = Compare(
            () => F.conv2d(x, w, b, padding: [1, 1]).Dispose(),
            () => F.conv2d(xCl, wCl, b, padding: [1, 1]).Dispose());
        return new(nchw, channelsLast);
    }

    /// <summary>Whether sliced matmuls beat SDPA for two heads of <paramref name="headDim"/> at the token counts.</summary>
    public static Measurement<AttentionKernel> Attention(ScalarType dtype, int headDim, long queries, long keys)
    {
        using var mode = inference_mode();
        using var scope = NewDisposeScope();
        using var random = new Generator(0);
        var q = randn([1, 2, queries, headDim], generator: random).to(dtype);
        var k = randn([1, 2, keys, headDim], generator: random).to(dtype);
        var v = randn([1, 2, keys, headDim], generator: random).to(dtype);
        var (sdpa, sliced) = Compare(
            () => AttentionKernels.Attend(AttentionKernel.Sdpa, q, k, v).Dispose(),
            () => AttentionKernels.Attend(AttentionKernel.SlicedMatmul, q, k, v).Dispose());
        var winner = sliced < sdpa * (1 - Margin) ? AttentionKernel.SlicedMatmul : AttentionKernel.Sdpa;
        bool clear = winner == AttentionKernel.SlicedMatmul || sdpa < sliced * (1 - Margin);
        return new(winner, $"SDPA {Ms(sdpa)}, sliced matmul {Ms(sliced)}", clear);
    }

    /// <summary>Seconds of a set of linear products per kernel (F.linear, oneDNN as a 1×1 conv), ~6 GFLOP each: rows × in → out
    /// as SD 1.5's attention projections and feed-forward take them at a 32×32 latent (2048 tokens: 320→320, 320→1280,
    /// 1280→320), its cross-attention keys (154 × 768→320), and SD3's transformer width (512 × 1536→1536).</summary>
    public static LinearDecision.Timings LinearLayers(ScalarType dtype) => LinearPair(dtype,
        [(2048, 320, 320), (2048, 320, 1280), (2048, 1280, 320), (154, 768, 320), (512, 1536, 1536)]);

    /// <summary>Seconds of the matmul roofline per kernel: one [2048, 1024] × [1024 → 1024] product (4.3 GFLOP; bench's
    /// roofline uses 2048³ for its GFLOP/s figures).</summary>
    public static LinearDecision.Timings LinearRoofline(ScalarType dtype) => LinearPair(dtype, [(2048, 1024, 1024)]);

    static LinearDecision.Timings LinearPair(ScalarType dtype, (long Rows, long In, long Out)[] shapes)
    {
        using var mode = inference_mode();
        using var scope = NewDisposeScope();
        using var random = new Generator(0);
        var operands = shapes.Select(s => (X: randn([s.Rows, s.In], generator: random).to(dtype),
            W: (randn([s.Out, s.In], generator: random) * 0.02).to(dtype), B: zeros(s.Out).to(dtype))).ToList();
        void Run(LinearKernel kernel)
        {
            foreach (var (x, w, b) in operands) LinearKernels.Linear(kernel, x, w, b).Dispose();
        }
        var (linear, oneDnn) = Compare(() => Run(LinearKernel.Default), () => Run(LinearKernel.OneDnn));
        return new(linear, oneDnn);
    }

    /// <summary>Median seconds of <paramref name="a"/> and <paramref name="b"/>, run alternately after a warm-up each:
    /// at least two rounds, then more while the budget lasts.</summary>
    public static (double A, double B) Compare(Action a, Action b)
    {
        a();
        b();
        var (timesA, timesB) = (new List<double>(), new List<double>());
        var budget = Stopwatch.StartNew();
        for (int round = 0; round < MaxRounds && (round < 2 || budget.Elapsed.TotalSeconds < BudgetSeconds); round++)
        {
            timesA.Add(Time(a));
            timesB.Add(Time(b));
        }
        return (Median(timesA), Median(timesB));
    }

    static double Time(Action work)
    {
        var clock = Stopwatch.StartNew();
        work();
        return clock.Elapsed.TotalSeconds;
    }

    static double Median(List<double> values)
    {
        values.Sort();
        int n = values.Count;
        return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
    }

    internal static string Ms(double seconds) => string.Create(CultureInfo.InvariantCulture, $"{seconds * 1000:F1} ms");
}
