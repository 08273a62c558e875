using System.Diagnostics;
using SharpDiffusion.Models;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpDiffusion.Cli.Bench;

/// <summary>The best rate libtorch reaches here for the two kernels SD spends its time in, per layout path.</summary>
public static class Roofline
{
    public sealed record Result(string Kernel, string Path, double GFlops);

    /// <summary>The rates each op class is set against, in GFLOP/s: the best 3×3 conv of any layout, and the default matmul
    /// path (the one nn.Linear takes: MKL's sgemm in float32).</summary>
    public sealed record Rates(double Conv, double Matmul)
    {
        public static Rates From(List<Result> results) => new(
            results.Where(r => r.Kernel.StartsWith("conv 3x3", StringComparison.Ordinal)).Select(r => r.GFlops).DefaultIfEmpty(0).Max(),
            results.First(r => r.Kernel.StartsWith("matmul", StringComparison.Ordinal) && r.Path.StartsWith("default", StringComparison.Ordinal)).GFlops);
    }

    /// <summary>Median seconds of <paramref name="runs"/> calls after one warm-up.</summary>
    public static double Time(Action work, int runs)
    {
        work();
        var times = new List<double>();
        for (int i = 0; i < runs; i++)
        {
            var clock = Stopwatch.StartNew();
            work();
            times.Add(clock.Elapsed.TotalSeconds);
        }
        return Median(times);
    }

    public static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        int n = sorted.Count;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }

    /// <param name="convs">false: the matmuls only (a transformer's work; emulated bfloat16 convs take minutes here).</param>
    public static List<Result> Measure(ScalarType dtype, int runs = 3, bool convs = true)
    {
        using var _ = inference_mode();
        var results = new List<Result>();
        if (convs) Convs(dtype, runs, results);
        Matmuls(dtype, runs, results);
        return results;
    }

    static void Convs(ScalarType dtype, int runs, List<Result> results)
    {
        // SD's most common conv: 320→320, 3×3, on 2×320×64×64 (batch 2 = CFG at 512×512).
        using var x = randn([2, 320, 64, 64]).to(dtype);
        using var w = (randn([320, 320, 3, 3]) * 0.02).to(dtype);
        using var b = zeros(320).to(dtype);
        double convFlops = 2.0 * 2 * 320 * 64 * 64 * 320 * 9;
        using var xCl = MemoryLayout.ToChannelsLast(x);
        using var wCl = MemoryLayout.ToChannelsLast(w);
        foreach (var (path, input, weight) in new[] { ("default (NCHW)", x, w), ("channels-last weight", x, wCl), ("channels-last", xCl, wCl) })
        {
            double s = Time(() => { using var y = F.conv2d(input, weight, b, padding: [1, 1]); }, runs);
            results.Add(new Result("conv 3x3 320->320 @64x64 x2", path, convFlops / s / 1e9));
        }
    }

    static void Matmuls(ScalarType dtype, int runs, List<Result> results)
    {
        using var x = randn([2048, 2048]).to(dtype);          // [M, K]
        using var weight = randn([2048, 2048]).to(dtype);     // [N, K], as nn.Linear holds it
        using var transposed = weight.t().contiguous();       // [K, N]: the weight stored pre-transposed
        double mmFlops = 2.0 * 2048 * 2048 * 2048;
        void Add(string path, Action product) => results.Add(new Result("matmul 2048^3", path, mmFlops / Time(product, runs) / 1e9));
        // nn.Linear's product (addmm: MKL's sgemm in float32), the same with the weight pre-transposed (sgemm without the
        // transpose flag), and the product as oneDNN's 1x1 convolution on a channels-last view (LinearKernel.OneDnn; on
        // AMD CPUs MKL may not take its fastest code path).
        Add("default (MKL sgemm)", () => LinearKernels.Linear(LinearKernel.Default, x, weight, null).Dispose());
        Add("pre-transposed weight", () => matmul(x, transposed).Dispose());
        Add("1x1 conv, oneDNN", () => LinearKernels.AsConvolution(x, weight, null).Dispose());
    }
}
