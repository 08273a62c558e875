using System.Diagnostics;
using System.Globalization;
using SharpDiffusion.Configuration;
using SharpDiffusion.Diagnostics;
using SharpDiffusion.Families.Flux;
using SharpDiffusion.Loading;
using SharpDiffusion.Loading.SingleFile;
using SharpDiffusion.Models;
using SharpDiffusion.Models.Transformers;
using SharpDiffusion.Tuning;
using static TorchSharp.torch;
using static SharpDiffusion.Cli.Bench.MarkdownTable;

namespace SharpDiffusion.Cli.Bench;

/// <summary>
/// `bench --arch flux-dev|flux-schnell [--weights bf16|fp8|q8_0|q4_k] [--depth-scale s]`: the Flux.1 transformer step with
/// random weights in the published config (black-forest-labs/FLUX.1-dev, -schnell transformer/config.json: 19 double and
/// 38 single blocks of width 3072, 24 heads of 128, T5 4096 wide, CLIP pooled 768; dev with the guidance embedding),
/// written straight in the chosen format (<see cref="RandomCompactFile"/>) in BFL's layout, as every flux1-*.safetensors,
/// -fp8 and city96 -Q8_0.gguf users download (<see cref="BflTensors"/>; stable-diffusion.cpp reads only that layout), and
/// loaded as a user's file is (<see cref="BflTransformerFile"/>): float8/GGUF weights compact, dequantized per layer. Each compact format is also timed decoded to the compute dtype at load (the
/// same weights, `CompactWeights = false`, as bf16 weights run): the difference is what compact weights cost per step.
/// Compute dtype: `--dtype` (first entry), default auto (bfloat16 where the CPU has it natively, else float32).
/// `--depth-scale` keeps that fraction of the blocks (a 12 B model is 12.7 GB in Q8_0, 24 GB in bfloat16); the full-size
/// step, weights and peak are then extrapolated from the measured ones (FLOPs and bytes per block), and labelled so.
/// Batch 1 (Flux's guidance is distilled: no CFG batch); T5 tokens 512 (dev) or 256 (schnell), as the pipelines use.
/// </summary>
public static class FluxBench
{
    /// <summary>The published transformer config of FLUX.1 [dev] / [schnell] (guidance_embeds: dev only).</summary>
    public static FluxTransformer2DConfig Published(bool dev, double depthScale = 1)
    {
        string json = $$"""
            {
              "_class_name": "FluxTransformer2DModel",
              "attention_head_dim": 128,
              "axes_dims_rope": [16, 56, 56],
              "guidance_embeds": {{(dev ? "true" : "false")}},
              "in_channels": 64,
              "joint_attention_dim": 4096,
              "num_attention_heads": 24,
              "num_layers": {{Scaled(19, depthScale)}},
              "num_single_layers": {{Scaled(38, depthScale)}},
              "patch_size": 1,
              "pooled_projection_dim": 768
            }
            """;
        return FluxTransformer2DConfig.From(JsonConfig.Parse(json, "the published Flux.1 transformer config"));
    }

    static int Scaled(int blocks, double scale) => Math.Max(1, (int)Math.Round(blocks * scale));

    public sealed record Row(string Weights, string HeldAs, int DoubleBlocks, int SingleBlocks, long ResidentBytes, double LoadSeconds,
        int Side, double StepSeconds, long Flops, long AttentionFlops, long PeakBytes, double LinearSeconds);

    public static int Run(CommandLine cl, string arch)
    {
        bool dev = arch switch { "flux-dev" => true, "flux-schnell" => false, _ => throw new UsageException($"--arch flux-dev or flux-schnell; got '{arch}'.") };
        var formats = (cl.String("weights") ?? "q8_0").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(RandomCompactFile.Parse).Distinct().ToList();
        double depthScale = cl.Double("depth-scale") ?? 1;
        if (depthScale <= 0 || depthScale > 1) throw new UsageException($"--depth-scale takes a fraction in (0, 1]; got {depthScale}.");
        var sizes = (cl.String("sizes") ?? "512").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(v => int.TryParse(v, CultureInfo.InvariantCulture, out int n) && n > 0 && n % 16 == 0 ? n
                : throw new UsageException($"--sizes takes positive multiples of 16, comma-separated; got '{v}'.")).ToList();
        int steps = cl.Int("steps") ?? 2;
        // Compute dtype: --dtype's first entry, else auto (bfloat16 where the CPU computes it natively, else float32).
        var dtype = FastPathOptions.DType(cl.String("dtype")?.Split(',')[0] ?? "auto");
        if (steps < 0) throw new UsageException("--steps must be 0 (time the first pass, no warm-up) or more.");
        if (cl.String("sdcpp") is not null && !formats.Any(f => RandomCompactFile.Extension(f) == ".gguf"))
            throw new UsageException("--sdcpp times stable-diffusion.cpp on the GGUF file this bench writes: add q8_0 or q4_k to --weights.");
        TorchRuntime.Initialize(Threads.Check(cl.Int("threads") ?? Environment.ProcessorCount));
        string dir = cl.String("keep-model") ?? Path.Combine(Path.GetTempPath(), "sharpdiffusion-bench-flux");
        Directory.CreateDirectory(dir);

        var config = Published(dev, depthScale);
        var full = Published(dev);
        long parameters = ParameterCount(config), fullParameters = ParameterCount(full);
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(inv, $"SharpDiffusion bench: FLUX.1 [{(dev ? "dev" : "schnell")}] transformer, {MachineKey.CpuName()}, {Environment.ProcessorCount} cores, libtorch threads {get_num_threads()}"));
        Console.WriteLine(string.Create(inv, $"  {config.NumLayers}+{config.NumSingleLayers} blocks ({parameters / 1e9:F2} B parameters){(depthScale < 1 ? $" of the published 19+38 ({fullParameters / 1e9:F2} B): full-size figures extrapolated" : "")}"));

        double matmul = 0;
        if (!cl.Flag("skip-roofline"))
        {
            var rates = Roofline.Measure(dtype, convs: false);
            matmul = Roofline.Rates.From(rates).Matmul;
            Console.WriteLine(string.Create(inv, $"  roofline: {BenchChild.Name(dtype)} matmul {matmul:F0} GFLOP/s"));
        }

        var rows = new List<Row>();
        string? gguf = null;
        foreach (var format in formats)
        {
            // flux1-*: BFL's layout (files of earlier benches, named flux-*, held diffusers' names).
            string path = Path.Combine(dir, $"flux1-{(dev ? "dev" : "schnell")}-{config.NumLayers}x{config.NumSingleLayers}-{RandomCompactFile.Name(format)}{RandomCompactFile.Extension(format)}");
            if (RandomCompactFile.Extension(format) == ".gguf") gguf ??= path;
            if (File.Exists(path)) Console.WriteLine($"Reusing {path}");
            else
            {
                Console.WriteLine($"Writing {path} (random {RandomCompactFile.Name(format)} weights in BFL's layout, tensor by tensor) ...");
                var clock = Stopwatch.StartNew();
                WriteWeights(path, config, format);
                Console.WriteLine(string.Create(inv, $"  {new FileInfo(path).Length / 1e9:F2} GB in {clock.Elapsed.TotalSeconds:F0}s"));
            }
            rows.AddRange(Measure(path, config, format, compactWeights: true, dev, sizes, steps, dtype));
            if (format != BenchWeights.Bf16) // the same weights decoded at load: the compact cost is the difference
            {
                long decoded = parameters * DTypeBytes(dtype);
                if (Pipelines.MemoryEstimate.AvailableBytes() is long free && decoded > free * 0.9)
                    Console.WriteLine(string.Create(inv, $"Skipping the {RandomCompactFile.Name(format)} weights decoded to {BenchChild.Name(dtype)} at load: {decoded / 1e9:F1} GB would not fit in the {free / 1e9:F1} GB available (use --depth-scale for that row)."));
                else rows.AddRange(Measure(path, config, format, compactWeights: false, dev, sizes, steps, dtype));
            }
        }
        Print(rows, matmul, BenchChild.Name(dtype), (double)fullParameters / parameters, full.NumLayers + full.NumSingleLayers, depthScale < 1);
        if (cl.String("sdcpp") is { } sdcpp) // stable-diffusion.cpp on the first GGUF written, the same sizes
            StableDiffusionCpp.CompareFlux(sdcpp, cl.String("sdcpp-args"), gguf!, dir, sizes, get_num_threads(),
                side => rows.Where(r => r.Side == side && gguf!.Contains($"-{r.Weights}.gguf", StringComparison.Ordinal)).Select(r => ($"{r.Weights}, {r.HeldAs}", r.StepSeconds)));
        return 0;
    }

    /// <summary>Random weights of <paramref name="config"/> at <paramref name="path"/> in <paramref name="format"/>, in BFL's layout.</summary>
    public static void WriteWeights(string path, FluxTransformer2DConfig config, BenchWeights format)
    {
        var (tensors, compact) = BflTensors(config, format);
        RandomCompactFile.Write(path, tensors, compact.Contains, format, architecture: "flux");
    }

    /// <summary>
    /// The transformer's tensors in BFL's layout (names and shapes, sorted; fused qkv and linear1, from the model's own
    /// parameters through <see cref="BflKeyMap.Fuse"/>), and which are stored compact: a tensor all of whose parts are
    /// compact-capable linear weights; in a GGUF only the blocks' (city96's quantizer keeps img_in, txt_in, time_in,
    /// vector_in, guidance_in and final_layer in their source type). Values are drawn in the fused shapes: random either way.
    /// </summary>
    public static (List<(string Name, long[] Shape)> Tensors, HashSet<string> Compact) BflTensors(FluxTransformer2DConfig config, BenchWeights format)
    {
        Dictionary<string, long[]> shapes;
        HashSet<string> linear;
        using (Layers.Placement(new Device("meta")))
        using (var model = new FluxTransformer2DModel(config))
        {
            shapes = model.named_parameters().DistinctBy(p => p.name).ToDictionary(p => p.name, p => p.parameter.shape, StringComparer.Ordinal);
            linear = model.named_modules().Where(m => m.module is Linear { CompactCapable: true }).Select(m => m.name + ".weight").ToHashSet(StringComparer.Ordinal);
        }
        var fused = BflKeyMap.Fuse(shapes, config.NumLayers, config.NumSingleLayers);
        bool gguf = RandomCompactFile.Extension(format) == ".gguf";
        var compact = fused.Where(t => t.Diffusers.All(linear.Contains)
                && (!gguf || t.Bfl.StartsWith("double_blocks.", StringComparison.Ordinal) || t.Bfl.StartsWith("single_blocks.", StringComparison.Ordinal)))
            .Select(t => t.Bfl).ToHashSet(StringComparer.Ordinal);
        return (fused.Select(t => (t.Bfl, t.Shape)).OrderBy(t => t.Bfl, StringComparer.Ordinal).ToList(), compact);
    }

    static long DTypeBytes(ScalarType dtype) => dtype == ScalarType.Float32 ? 4 : 2;

    static long ParameterCount(FluxTransformer2DConfig config)
    {
        using (Layers.Placement(new Device("meta")))
        using (var model = new FluxTransformer2DModel(config))
            return model.parameters().Sum(p => p.numel());
    }

    static IEnumerable<Row> Measure(string path, FluxTransformer2DConfig config, BenchWeights format, bool compactWeights, bool dev, List<int> sizes, int steps, ScalarType dtype)
    {
        var inv = CultureInfo.InvariantCulture;
        string name = BenchChild.Name(dtype);
        string heldAs = format == BenchWeights.Bf16 ? $"{name} (at load)" : compactWeights ? $"compact {RandomCompactFile.Name(format)}" : $"decoded to {name} at load";
        Console.WriteLine($"Measuring {RandomCompactFile.Name(format)} weights, {heldAs} ...");
        GC.Collect();
        NativeHeap.Trim();
        ProcessMemory.ResetPeak();
        var clock = Stopwatch.StartNew();
        FluxTransformer2DModel transformer;
        using (Layers.Placement(new Device("meta"))) transformer = new FluxTransformer2DModel(config);
        using var _model = transformer;
        transformer.eval();
        using (var file = TensorFiles.Open(path, GgufArithmetic.Float16))
        using (var bfl = new BflTransformerFile(file, config.NumLayers, config.NumSingleLayers, config.InnerDim))
            StateDictLoader.Load(transformer, [bfl], new WeightPlacement(dtype, new Device("cpu"), false) { CompactWeights = compactWeights });
        transformer.UseAttentionKernel(new LoadOptions().FastPaths.AttentionChoice(null));
        double load = clock.Elapsed.TotalSeconds;
        long resident = Linear.ResidentBytesOf(transformer);
        Console.WriteLine(string.Create(inv, $"  load {load:F1}s, weights in memory {resident / 1e9:F2} GB"));

        var rows = new List<Row>();
        using var _ = inference_mode();
        int textTokens = dev ? 512 : 256; // FluxPipeline's max_sequence_length: dev 512, schnell 256
        using var t5 = randn([1, textTokens, config.JointAttentionDim]);
        using var pooled = randn([1, config.PooledProjectionDim]);
        foreach (int side in sizes)
        {
            using var latents = randn([1, 16, side / 8, side / 8]); // [1, 16, H/8, W/8], packed 2×2 into 64-wide tokens
            using var scope = NewDisposeScope();
            var input = FluxTransformerDenoiser.TransformerInput(transformer, latents, 1000f, t5, pooled, 3.5f, dtype);
            var flops = new FlopCounter(transformer);
            clock.Restart();
            // --steps 0: the first (counted) pass is the timed one, for full-size steps of many minutes where a warm-up
            // pass would double the run and its first-call costs are a rounding error.
            var times = new List<double>();
            var timer = steps == 0 ? new OpClassTimer(transformer) : null;
            using (flops) transformer.Forward(input).Dispose(); // warm-up, counted
            Console.WriteLine(string.Create(inv, $"  {side}x{side}: {(steps == 0 ? "step (no warm-up)" : "warm-up")} {clock.Elapsed.TotalSeconds:F1}s, {flops.Total / 1e12:F2} TFLOP"));
            if (steps == 0) times.Add(clock.Elapsed.TotalSeconds);
            else
            {
                timer = new OpClassTimer(transformer);
                for (int i = 0; i < steps; i++)
                {
                    clock.Restart();
                    transformer.Forward(input with { Timestep = input.Timestep * (0.9f - 0.1f * i) }).Dispose();
                    times.Add(clock.Elapsed.TotalSeconds);
                    Console.WriteLine(string.Create(inv, $"  {side}x{side}: step {i + 1}/{steps} {times[^1]:F2}s"));
                }
            }
            double linear = timer!.LinearSeconds / Math.Max(1, steps);
            timer.Dispose();
            rows.Add(new Row(RandomCompactFile.Name(format), heldAs, config.NumLayers, config.NumSingleLayers, resident, load, side,
                Roofline.Median(times), flops.Total, flops.Attention, ProcessMemory.PeakResidentBytes ?? 0, linear));
        }
        return rows;
    }

    /// <param name="parameterRatio">full-size parameters / measured ones (weights and linear FLOPs scale with it).</param>
    /// <param name="fullBlocks">19 + 38: attention FLOPs scale with the block count.</param>
    static void Print(List<Row> rows, double matmul, string dtype, double parameterRatio, int fullBlocks, bool extrapolate)
    {
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine();
        Column[] measured = [Label("weights"), Label("held as"), Label("blocks"), Label("size"), Number("step s"), Number("of it in linear layers s"), Number("TFLOP"),
            Number("GFLOP/s"), Number("of matmul roofline"), Number("weights GB"), Number("peak RSS GB")];
        Column[] fullSize = [Number("full-size step s (extrapolated)"), Number("full-size weights GB (extrapolated)"), Number("full-size peak GB (extrapolated)")];
        var table = new MarkdownTable(extrapolate ? [.. measured, .. fullSize] : measured);
        foreach (var r in rows)
        {
            double rate = r.Flops / r.StepSeconds / 1e9;
            var cells = new List<FormattableString> { $"{r.Weights}", $"{r.HeldAs}", $"{r.DoubleBlocks}+{r.SingleBlocks}", $"{r.Side}²", $"{r.StepSeconds:F2}", $"{r.LinearSeconds:F2}",
                $"{r.Flops / 1e12:F2}", $"{rate:F0}", $"{(matmul > 0 ? (rate / matmul).ToString("P0", inv) : "–")}", $"{r.ResidentBytes / 1e9:F2}", $"{r.PeakBytes / 1e9:F2}" };
            if (extrapolate)
            {
                // Linear FLOPs follow the parameters, attention FLOPs the block count; the step time follows the FLOPs at
                // the measured rate. Weights follow the parameters; the peak is the measured one with the weights swapped.
                double fullFlops = (r.Flops - r.AttentionFlops) * parameterRatio + r.AttentionFlops * (double)fullBlocks / (r.DoubleBlocks + r.SingleBlocks);
                double step = r.StepSeconds * fullFlops / r.Flops;
                double weights = r.ResidentBytes * parameterRatio;
                double peak = r.PeakBytes - r.ResidentBytes + weights;
                cells.AddRange([$"{step:F1}", $"{weights / 1e9:F1}", $"{peak / 1e9:F1}"]);
            }
            table.Add([.. cells]);
        }
        table.Print();
        Console.WriteLine($"Batch 1 (distilled guidance), T5 tokens 512 (dev) / 256 (schnell); compute {dtype} (roofline: its default matmul path); \"decoded\" is the same file's " +
            "weights decoded at load (CompactWeights = false): the compact row's extra seconds are the per-layer dequantization.");
        if (extrapolate)
            Console.WriteLine("Full-size columns are extrapolated from the blocks measured (FLOPs per block at the measured rate; bytes per parameter), not measured.");
    }
}
