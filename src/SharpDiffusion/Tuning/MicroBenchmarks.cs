using System.Diagnostics;
using System.Globalization;
using SharpDiffusion.Models;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpDiffusion.Tuning;

/// <summary>
/// Short A/B timings behind the fast-path choices, each about a second on a 2-core machine. The two candidates run
/// interleaved (a, b, a, b, …) so a neighbour's load hits both alike; the alternative wins only if its median is
/// <see cref="Margin"/> faster, so noise keeps the default.
/// </summary>
public static class MicroBenchmarks
{
    public const double Margin = 0.05;
    const double BudgetSeconds = 1.0;
    const int MaxRounds = 5;

    /// <summary>Whether channels-last beats NCHW for <paramref name="dtype"/>: the body of a ResnetBlock2D (GroupNorm,
    /// SiLU, 3×3 conv, twice, and the residual) at 320 channels on 2×32×32, with NCHW and with channels-last tensors.</summary>
    public static Measurement<bool> Layout(ScalarType dtype)
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
        return new(channelsLast < nchw * (1 - Margin), $"NCHW {Ms(nchw)}, channels-last {Ms(channelsLast)} per ResNet block");
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
        return new(winner, $"SDPA {Ms(sdpa)}, sliced matmul {Ms(sliced)}");
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

    static string Ms(double seconds) => string.Create(CultureInfo.InvariantCulture, $"{seconds * 1000:F1} ms");
}
