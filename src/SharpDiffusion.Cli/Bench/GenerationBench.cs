using System.Diagnostics;
using System.Globalization;
using SharpDiffusion.Diagnostics;
using SharpDiffusion.Loading;
using SharpDiffusion.Pipelines;
using static SharpDiffusion.Cli.Bench.MarkdownTable;

namespace SharpDiffusion.Cli.Bench;

/// <summary>One whole generation in a process of its own, as `generate` (LowMemory) or `serve` (resident) runs it: open,
/// encode, denoise, decode; its time, its peak RSS and where in the generation that peak happened.</summary>
public static class GenerationBench
{
    /// <summary>A whole generation's time and peak RSS, the RSS once the pipeline was opened, and where the peak was
    /// (the stage and the components whose weights were in memory at the highest RSS sample).</summary>
    public sealed record GenerationRow(string DType, string Mode, double OpenSeconds, double GenerateSeconds, long OpenedBytes, long PeakBytes,
        string PeakWhere = "", List<string>? PeaksByPlace = null);

    public static GenerationRow Measure(string model, LoadOptions options, string mode, int width, int height, int steps)
    {
        Console.WriteLine($"Measuring a whole {BenchChild.Name(options.DType)} generation at {width}x{height}, weights {mode} ...");
        GC.Collect();
        ProcessMemory.ResetPeak();
        string stage = "open";
        double open = 0;
        StableDiffusionPipeline? opened = null;
        using var locator = new PeakLocator(() => $"{stage}, weights in memory: {Resident(opened)}");
        var clock = Stopwatch.StartNew();
        // A line every 30 s, so a generation too slow to wait for (bfloat16 emulated) still shows its peak so far.
        using var ticker = new Timer(_ => Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  [{clock.Elapsed.TotalSeconds + open:F0}s] RSS {locator.LastSampleBytes / 1e9:F2} GB; peak so far {(ProcessMemory.PeakResidentBytes ?? 0) / 1e9:F2} GB, highest sample at {locator.Where}")),
            null, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(30));
        using var pipeline = StableDiffusionPipeline.Load(model, options);
        opened = pipeline;
        open = clock.Elapsed.TotalSeconds;
        long openedBytes = ProcessMemory.ResidentBytes ?? 0;
        clock.Restart();
        var progress = new Progress(p => stage = p.Stage.ToString().ToLowerInvariant());
        using var result = pipeline.Generate(new GenerationOptions
        {
            Prompts = ["a photograph of an astronaut riding a horse"], Width = width, Height = height, NumInferenceSteps = steps, Seed = 1,
            // the UNet families' Euler; SD3 keeps its own flow-matching scheduler
            Scheduler = pipeline.Family is Families.StableDiffusion3.StableDiffusion3Family ? null : "euler",
        }, progress);
        double generate = clock.Elapsed.TotalSeconds;
        stage = "done";
        ticker.Dispose();
        locator.Dispose();
        long peak = ProcessMemory.PeakResidentBytes ?? 0;
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(inv,
            $"  open {open:F1}s, generate {generate:F1}s, peak RSS {peak / 1e9:F2} GB; highest sample {locator.PeakSampleBytes / 1e9:F2} GB at {locator.Where}"));
        var places = locator.PeaksByPlace.Select(p => string.Create(inv, $"{p.Bytes / 1e9:F2} GB at {p.Where}")).ToList();
        return new GenerationRow(BenchChild.Name(options.DType), mode, open, generate, openedBytes, peak, locator.Where, places);
    }

    /// <summary>The components whose weights are in memory now, by their folder names.</summary>
    static string Resident(StableDiffusionPipeline? pipeline)
    {
        if (pipeline is null) return "(loading)";
        var c = pipeline.Components;
        var names = c.Conditioner.Encoders.Select((w, i) => (w, i == 0 ? "text_encoder" : $"text_encoder_{i + 1}"))
            .Append((c.Denoiser.Weights, c.Denoiser.Weights.Module.GetType().Name.Contains("Transformer") ? "transformer" : "unet"))
            .Append((c.Vae.Weights, "vae"));
        var resident = names.Where(n => n.Item1.Resident).Select(n => n.Item2).ToList();
        return resident.Count == 0 ? "none" : string.Join(" + ", resident);
    }

    /// <summary>Reports on the calling thread (System.Progress would post to the thread pool, after the stage has moved on).</summary>
    sealed class Progress(Action<GenerationProgress> report) : IProgress<GenerationProgress>
    {
        public void Report(GenerationProgress value) => report(value);
    }

    public static void Print(List<GenerationRow> rows, int width, int height, int steps)
    {
        if (rows.Count == 0) return;
        Console.WriteLine();
        Console.WriteLine($"Whole generations ({width}x{height}, {steps} steps, each in a process of its own):");
        var table = new MarkdownTable(Label("dtype"), Label("weights"), Number("open s"), Number("generate s"), Number("RSS after open GB"), Number("peak RSS GB"), Label("peak at"));
        foreach (var r in rows)
            table.Add($"{r.DType}", $"{r.Mode}", $"{r.OpenSeconds:F1}", $"{r.GenerateSeconds:F1}", $"{r.OpenedBytes / 1e9:F2}", $"{r.PeakBytes / 1e9:F2}", $"{r.PeakWhere}");
        table.Print();
        Console.WriteLine("resident: as `serve` keeps them (every component loaded at open); low-memory: as `generate` (each part's weights read when it runs, freed after).");
        Console.WriteLine("peak at: the stage and the weights in memory at the highest RSS sample (sampled every 20 ms; the peak itself is the kernel's VmHWM).");
        foreach (var r in rows.Where(r => r.PeaksByPlace is { Count: > 0 }))
        {
            Console.WriteLine($"Highest RSS sample per stage ({r.DType}, {r.Mode}):");
            foreach (var place in r.PeaksByPlace!) Console.WriteLine($"  {place}");
        }
    }
}
