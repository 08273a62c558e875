using System.Globalization;
using static SharpDiffusion.Cli.Bench.MarkdownTable;

namespace SharpDiffusion.Cli.Bench;

/// <summary>The UNet families' table: per dtype, the parts' times with their rates against the roofline measured in the same
/// run, the fast paths and their A/Bs, and the UNet step by op class.</summary>
public static class BenchReport
{
    public static void PrintUNet(List<UNetBench.Row> rows, int totalSteps, Dictionary<string, Roofline.Rates> roofline)
    {
        var inv = CultureInfo.InvariantCulture;
        // A rate and, when the roofline was measured, its fraction of the best conv rate of the same dtype in this run.
        string Rate(UNetBench.Row r, long flops, double seconds)
        {
            if (seconds <= 0) return "–";
            double rate = flops / seconds / 1e9;
            return roofline.TryGetValue(r.DType, out var best) ? string.Create(inv, $"{rate:F0}, {rate / best.Conv:P0}") : string.Create(inv, $"{rate:F0}");
        }
        Console.WriteLine();
        var table = new MarkdownTable(Label("dtype"), Number("load s"), Number("text enc ms"), Number("UNet step s (GFLOP/s, of roofline)"),
            Number("VAE decode s (GFLOP/s, of roofline)"), Number($"total {totalSteps} steps s"), Number("peak RSS GB (before VAE)"));
        foreach (var r in rows)
            table.Add($"{r.DType}", $"{r.LoadSeconds:F1}", $"{r.TextSeconds * 1000:F0}", $"{r.StepSeconds:F2} ({Rate(r, r.StepFlops, r.StepSeconds)})",
                $"{r.VaeSeconds:F2} ({Rate(r, r.VaeFlops, r.VaeSeconds)})", $"{r.TotalSeconds:F1}", $"{r.PeakBytes / 1e9:F2} ({r.PeakBeforeVaeBytes / 1e9:F2})");
        table.Print();
        if (roofline.Count > 0)
            Console.WriteLine("Roofline: the best 3x3 conv rate of the dtype measured above in this run.");
        foreach (var r in rows)
        {
            Console.WriteLine($"Fast paths ({r.DType}):");
            foreach (var c in r.Choices) Console.WriteLine($"  {c}");
            foreach (var ab in r.ABs)
                Console.WriteLine(string.Create(inv, $"  A/B {ab.Choice}: {ab.A} {ab.SecondsA:F2} s vs {ab.B} {ab.SecondsB:F2} s per UNet step " +
                    $"({Rate(r, r.StepFlops, ab.SecondsA)} vs {Rate(r, r.StepFlops, ab.SecondsB)} GFLOP/s): {ab.B} is x{ab.SecondsA / ab.SecondsB:F2}; in use: {ab.InUse}"));
            if (FastPathAB.LayoutAdvice(r.ABs) is { } advice) Console.WriteLine($"  {advice}");
            if (r.Profile is { } profile)
            {
                Console.WriteLine($"Op classes per UNet step ({r.DType}, mean of the timed steps):");
                foreach (var line in profile.Lines(roofline.GetValueOrDefault(r.DType))) Console.WriteLine($"  {line}");
            }
        }
        var first = rows[0];
        Console.WriteLine(string.Create(inv, $"FLOPs: text encoder {first.TextFlops / 1e12:F3} TFLOP (2 prompts), UNet step {first.StepFlops / 1e12:F2} TFLOP ({first.StepSplit}), VAE decode {first.VaeFlops / 1e12:F2} TFLOP"));
        foreach (var r in rows.Skip(1))
            Console.WriteLine(string.Create(inv, $"{r.DType} vs {first.DType}: UNet step x{first.StepSeconds / r.StepSeconds:F2}, " +
                $"VAE decode x{(r.VaeSeconds > 0 ? first.VaeSeconds / r.VaeSeconds : 0):F2}, total x{first.TotalSeconds / r.TotalSeconds:F2}"));
    }
}
