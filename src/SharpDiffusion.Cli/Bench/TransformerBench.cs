using System.Diagnostics;
using System.Globalization;
using SharpDiffusion.Conditioning;
using SharpDiffusion.Configuration;
using SharpDiffusion.Diagnostics;
using SharpDiffusion.Loading;
using SharpDiffusion.Models;
using SharpDiffusion.Models.Transformers;
using SharpDiffusion.Models.Vae;
using SharpDiffusion.Tuning;
using static TorchSharp.torch;
using static SharpDiffusion.Cli.Bench.MarkdownTable;

namespace SharpDiffusion.Cli.Bench;

/// <summary>
/// The SD3/SD3.5 transformer's step in the child process of one dtype: loaded alone (the text encoders are not needed to
/// time it: the text tokens are random, as many as a real prompt gives, 77 CLIP + 256 T5), then at each image size one
/// counted warm-up pass (FLOPs by <see cref="FlopCounter"/>) and the timed steps, profiled by <see cref="OpClassTimer"/>.
/// CFG batch 2, as a guided generation runs it.
/// </summary>
public static class TransformerBench
{
    /// <summary>One image size: the median step and its profile.</summary>
    public sealed record SizeRow(int Width, int Height, double StepSeconds, StepProfile Profile);

    public sealed record Row(string DType, double LoadSeconds, long PeakBytes, long WeightBytes, List<SizeRow> Sizes);

    public static Row Measure(string modelDir, LoadOptions options, IReadOnlyList<int> sizes, int steps)
    {
        var dtype = options.DType;
        Console.WriteLine($"Measuring the transformer in {BenchChild.Name(dtype)} ...");
        GC.Collect();
        ProcessMemory.ResetPeak();
        var folder = DiffusersFolder.Open(modelDir);
        var clock = Stopwatch.StartNew();
        using var transformer = ComponentLoader.LoadSD3Transformer(folder.Component("transformer"), options);
        double load = clock.Elapsed.TotalSeconds;
        long weightBytes = Linear.ResidentBytesOf(transformer);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  load {load:F1}s, weights {weightBytes / 1e9:F2} GB"));
        Console.WriteLine($"  {FastPathAB.Describe("linear", options.LinearChoice(), LinearDecision.Name, "matmul roofline")}");
        int f = AutoencoderKLConfig.From(JsonConfig.Load(Path.Combine(folder.Component("vae"), "config.json"))).ScaleFactor;

        using var _ = inference_mode();
        var c = transformer.Config;
        using var text = randn([2, 77 + Sd3TextConditioner.DefaultMaxSequenceLength, c.JointAttentionDim]).to(dtype); // [2, 333, 4096]
        using var pooled = randn([2, c.PooledProjectionDim]).to(dtype);                                                 // [2, 2048]
        var rows = new List<SizeRow>();
        foreach (int side in sizes)
        {
            using var latents = randn([2, c.InChannels, side / f, side / f]).to(dtype); // [2, 16, H/8, W/8]
            Tensor Step(float t)
            {
                using var timestep = full([2], t);
                return transformer.Forward(new SD3Transformer2DInput(latents, timestep, text, pooled));
            }
            var flops = new FlopCounter(transformer);
            clock.Restart();
            using (flops)
                Step(1000f).Dispose(); // warm-up, counted
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {side}x{side}: warm-up {clock.Elapsed.TotalSeconds:F1}s, {flops.Total / 1e12:F2} TFLOP"));
            var times = new List<double>();
            OpClassTimes opTimes;
            using (var opTimer = new OpClassTimer(transformer)) // the timed steps are the profiled ones: two hooks per layer cost microseconds
            {
                for (int i = 0; i < steps; i++)
                {
                    clock.Restart();
                    Step(900f - 100 * i).Dispose();
                    times.Add(clock.Elapsed.TotalSeconds);
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {side}x{side}: step {i + 1}/{steps} {times[^1]:F2}s"));
                }
                opTimes = opTimer.Result(times.Sum(), steps);
            }
            rows.Add(new SizeRow(side, side, Roofline.Median(times), StepProfile.From(flops, opTimes)));
            if (side == sizes[0] && FastPathAB.Linear(transformer, () => Timed(() => Step(500f).Dispose()), steps, options) is { } ab)
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  A/B linear: {ab.A} {ab.SecondsA:F2}s, {ab.B} {ab.SecondsB:F2}s per step (in use: {ab.InUse})"));
        }
        return new Row(BenchChild.Name(dtype), load, ProcessMemory.PeakResidentBytes ?? 0, weightBytes, rows);
    }

    static double Timed(Action work)
    {
        var clock = Stopwatch.StartNew();
        work();
        return clock.Elapsed.TotalSeconds;
    }

    /// <summary>The transformer's parameter count from its config (built on the meta device: no memory).</summary>
    public static long ParameterCount(string modelDir)
    {
        var config = SD3Transformer2DConfig.From(JsonConfig.Load(Path.Combine(modelDir, "transformer", "config.json")));
        using (Layers.Placement(new Device("meta")))
        using (var model = new SD3Transformer2DModel(config))
            return model.parameters().Sum(p => p.numel());
    }

    public static void Print(List<Row> rows, Dictionary<string, Roofline.Rates> roofline)
    {
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine();
        var table = new MarkdownTable(Label("dtype"), Label("size"), Number("transformer step s"), Number("TFLOP/step"), Number("GFLOP/s"), Number("of matmul roofline"),
            Number("load s"), Number("peak RSS GB"));
        foreach (var r in rows)
            foreach (var s in r.Sizes)
            {
                double rate = s.Profile.TotalFlops / s.StepSeconds / 1e9;
                string of = roofline.TryGetValue(r.DType, out var best) ? string.Create(inv, $"{rate / best.Matmul:P0}") : "–";
                table.Add($"{r.DType}", $"{s.Width}x{s.Height}", $"{s.StepSeconds:F2}", $"{s.Profile.TotalFlops / 1e12:F2}", $"{rate:F0}", $"{of}", $"{r.LoadSeconds:F1}", $"{r.PeakBytes / 1e9:F2}");
            }
        table.Print();
        Console.WriteLine("CFG batch 2; text tokens 77 + 256; roofline: the default matmul path (nn.Linear's) of the dtype in this run; peak RSS: the child's, weights and all sizes.");
        foreach (var r in rows)
            foreach (var s in r.Sizes)
            {
                Console.WriteLine($"Op classes per transformer step ({r.DType}, {s.Width}x{s.Height}; {s.Profile.FlopSplit}):");
                foreach (var line in s.Profile.Lines(roofline.GetValueOrDefault(r.DType))) Console.WriteLine($"  {line}");
            }
    }
}
