using SharpDiffusion.Conditioning;
using System.Diagnostics;
using System.Globalization;
using SharpDiffusion.Diagnostics;
using SharpDiffusion.Loading;
using SharpDiffusion.Models;
using SharpDiffusion.Models.Clip;
using SharpDiffusion.Models.UNet;
using SharpDiffusion.Models.Vae;
using SharpDiffusion.Tuning;
using static TorchSharp.torch;

namespace SharpDiffusion.Cli.Bench;

/// <summary>
/// `bench`: a full-size SD 1.5 (random weights, or a real folder) timed part by part at a chosen size and dtype,
/// with FLOPs, achieved GFLOP/s, peak RSS, load time, and a roofline measured in the same run.
/// </summary>
public static class BenchCommand
{
    public static readonly OptionSpec[] Options =
    [
        new("model", OptionKind.Text, "a diffusers SD folder or a single-file checkpoint to time (default: a full-size --arch architecture, random weights)", "DIR|FILE"),
        new("keep-model", OptionKind.Text, "without --model: write the random-weight folder here and keep it; a folder written before is reused (default: a temporary folder, deleted)", "DIR"),
        new("arch", OptionKind.Text, "without --model: sd15 (SD 1.5) or sdxl (SDXL 1.0 base), random weights (default: sd15)", "NAME"),
        new("width", OptionKind.Integer, "image width (default: 512; sdxl 1024)", "N"),
        new("height", OptionKind.Integer, "image height (default: as the width)", "N"),
        new("dtype", OptionKind.Text, "float32, bfloat16, float16 or auto (bfloat16 where the CPU computes it natively, else float32), comma-separated (default: float32,bfloat16); each dtype is measured in a fresh child process, so its peak RSS is its own", "LIST"),
        new("steps", OptionKind.Integer, "timed UNet steps; the median is reported (default: 3)", "N"),
        new("total-steps", OptionKind.Integer, "steps in the reported total (default: 20)", "N"),
        .. FastPathOptions.Options,
        new("deep-cache", OptionKind.Integer, "also time DeepCache's shallow UNet step (a full pass every N steps) and the UNet time of --total-steps with it (default: off)", "N"),
        new("ab-steps", OptionKind.Integer, "UNet steps per candidate in the in-process A/B of each fast-path choice (layout, attention) and of the per-step heap trim, interleaved; 0 skips it (default: 2)", "N"),
        new("threads", OptionKind.Integer, "libtorch threads (default: all cores)", "N"),
        new("skip-vae", OptionKind.Flag, "do not time the VAE decode"),
        new("skip-roofline", OptionKind.Flag, "do not measure the kernel roofline"),
        new("generation-steps", OptionKind.Integer, "steps of the whole generations whose peak RSS is measured, one with the weights resident (as `serve`) and one with LowMemory (as `generate`); 0 skips them (default: 2)", "N"),
        new("report", OptionKind.Text, "internal: a child measures one dtype and writes its row here", "FILE", Hidden: true),
        new("generation", OptionKind.Text, "internal: the child measures one whole generation: resident or low-memory", "MODE", Hidden: true),
    ];

    /// <summary>One whole generation in a process of its own: its time and peak RSS, and the RSS once the pipeline was opened.</summary>
    public sealed record GenerationRow(string DType, string Mode, double OpenSeconds, double GenerateSeconds, long OpenedBytes, long PeakBytes);

    public sealed record Row(string DType, double LoadSeconds, double TextSeconds, double StepSeconds, double VaeSeconds,
        double TotalSeconds, long PeakBytes, long PeakBeforeVaeBytes, long TextFlops, long StepFlops, long VaeFlops, string StepSplit,
        List<string> Choices, List<FastPathAB.Result> ABs);

    public static int Run(CommandLine cl)
    {
        string? report = cl.String("report"); // internal: a child measures one dtype and writes its row here
        string? model = cl.String("model");
        string arch = (cl.String("arch") ?? "sd15").ToLowerInvariant();
        if (arch is not ("sd15" or "sdxl")) throw new UsageException($"--arch takes sd15 or sdxl; got '{arch}'.");
        int width = cl.Int("width") ?? (arch == "sdxl" ? 1024 : 512), height = cl.Int("height") ?? width;
        var dtypes = (cl.String("dtype") ?? "float32,bfloat16").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(name => name.Equals("auto", StringComparison.OrdinalIgnoreCase) ? FastPathOptions.DType(name) : ParseDType(name)).Distinct().ToList();
        int steps = cl.Int("steps") ?? 3, totalSteps = cl.Int("total-steps") ?? 20;
        bool? channelsLast = FastPathOptions.ChannelsLast(cl.String("channels-last"));
        AttentionKernel? attention = FastPathOptions.Attention(cl.String("attention"));
        int abSteps = cl.Int("ab-steps") ?? 2;
        int threads = cl.Int("threads") ?? Environment.ProcessorCount;
        bool skipVae = cl.Flag("skip-vae"), skipRoofline = cl.Flag("skip-roofline");
        if (width % 8 != 0 || height % 8 != 0) throw new UsageException("--width and --height must be multiples of 8.");
        if (steps < 1) throw new UsageException("--steps must be at least 1.");
        if (abSteps < 0) throw new UsageException("--ab-steps must be 0 or more.");
        threads = Threads.Check(threads);
        TorchRuntime.Initialize(threads);

        if (report is not null && cl.String("generation") is { } mode)
        {
            var load = new LoadOptions { DType = dtypes.Single(), ChannelsLast = channelsLast, Attention = attention, LowMemory = mode == "low-memory" };
            var row = MeasureGeneration(model ?? throw new UsageException("--report needs --model"), load, mode, width, height, cl.Int("generation-steps") ?? 2);
            File.WriteAllText(report, System.Text.Json.JsonSerializer.Serialize(row));
            return 0;
        }
        if (report is not null)
        {
            var load = new LoadOptions { DType = dtypes.Single(), ChannelsLast = channelsLast, Attention = attention };
            var row = Measure(model ?? throw new UsageException("--report needs --model"), load, width, height, steps, totalSteps, abSteps, skipVae,
                cl.Int("deep-cache") ?? 1);
            File.WriteAllText(report, System.Text.Json.JsonSerializer.Serialize(row));
            return 0;
        }

        Console.WriteLine($"SharpDiffusion bench: {MachineKey.CpuName()}, {Environment.ProcessorCount} cores, libtorch threads {get_num_threads()}, " +
                          $"{width}x{height}, CFG batch 2, channels-last {cl.String("channels-last") ?? "auto"}, attention {cl.String("attention") ?? "auto"}");
        Console.WriteLine($"Fast-path cache: {(FastPaths.Default.Enabled ? new FastPathCache(FastPathCache.DefaultFolder()).Path : $"off (${FastPaths.TuningVariable})")}");

        string? temp = null;
        try
        {
            if (model is null && cl.String("keep-model") is { } keep && File.Exists(Path.Combine(keep, "model_index.json")))
            {
                Console.WriteLine($"Reusing the random-weight folder {keep}");
                model = keep;
            }
            else if (model is null)
            {
                string? kept = cl.String("keep-model");
                temp = kept ?? Path.Combine(Path.GetTempPath(), $"sharpdiffusion-bench-{Environment.ProcessId}");
                var clock = Stopwatch.StartNew();
                // SDXL's 3.5 B parameters are written as bfloat16 (7 GB, not 14); the float32 run upcasts them at load.
                var disk = arch == "sdxl" ? ScalarType.BFloat16 : ScalarType.Float32;
                Console.WriteLine($"Writing a random-weight {(arch == "sdxl" ? "SDXL 1.0" : "SD 1.5")} folder ({Name(disk)} safetensors) ...");
                RandomModelFolder.Write(temp, disk, xl: arch == "sdxl", tokenizer: DefaultModel.Locate("tokenizer/vocab.json") is { } shipped
                    ? Path.Combine(shipped, "tokenizer") : null);
                NativeHeap.Trim(); // the freed random models (10 GB for SDXL) go back to the system before the children load theirs
                Console.WriteLine($"  written in {clock.Elapsed.TotalSeconds:F1}s to {temp}");
                model = temp;
                if (kept is not null) temp = null; // kept: not deleted at the end
            }

            var roofline = new Dictionary<string, double>(); // dtype → best conv GFLOP/s
            if (!skipRoofline)
                foreach (var dtype in dtypes)
                {
                    Console.WriteLine($"Roofline ({Name(dtype)}):");
                    var results = Roofline.Measure(dtype);
                    foreach (var r in results)
                        Console.WriteLine($"  {r.Kernel,-34} {r.Path,-26} {r.GFlops,8:F1} GFLOP/s");
                    roofline[Name(dtype)] = results.Where(r => r.Kernel.StartsWith("conv 3x3", StringComparison.Ordinal)).Max(r => r.GFlops);
                }

            var rows = dtypes.Select(d => MeasureInChild<Row>(model, d, cl, width, height, null)).ToList();
            int generationSteps = cl.Int("generation-steps") ?? 2;
            bool canGenerate = File.Exists(model) || Directory.Exists(Path.Combine(model, "tokenizer"));
            if (!canGenerate && generationSteps > 0)
                Console.WriteLine($"No whole generations: {model} has no tokenizer/ (the shipped model's was not found to copy).");
            var generations = generationSteps <= 0 || !canGenerate ? [] : dtypes
                .SelectMany(d => new[] { "resident", "low-memory" }.Select(mode => MeasureInChild<GenerationRow>(model, d, cl, width, height, mode)))
                .ToList();
            PrintTable(rows, totalSteps, roofline);
            PrintGenerations(generations, width, height, generationSteps);
        }
        finally
        {
            if (temp is not null && Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        }
        return 0;
    }

    /// <summary>DeepCache's shallow step against the full one, in this process: its time and FLOPs, and the UNet time of
    /// <paramref name="totalSteps"/> steps with a full pass every <paramref name="interval"/> steps.</summary>
    static void DeepCacheStep(UNet2DConditionModel unet, Tensor latents, TextConditioning conditioning, int interval, int steps,
        double fullStep, long fullFlops, int totalSteps)
    {
        using var cache = new DeepFeatureCache(interval);
        using (var fill = unet.Forward(latents, 500f, conditioning, cache)) { }
        long flops;
        using (var counter = new FlopCounter(unet))
        {
            using var warm = unet.Forward(latents, 480f, conditioning, cache, reuse: true);
            flops = counter.Total;
        }
        var times = new List<double>();
        for (int i = 0; i < steps; i++)
        {
            var clock = Stopwatch.StartNew();
            using var noise = unet.Forward(latents, 460f - 20 * i, conditioning, cache, reuse: true);
            times.Add(clock.Elapsed.TotalSeconds);
        }
        double shallow = Roofline.Median(times);
        int full = (totalSteps + interval - 1) / interval;
        double with = full * fullStep + (totalSteps - full) * shallow, without = totalSteps * fullStep;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  DeepCache every {interval} steps: shallow step {shallow:F2}s ({(double)flops / fullFlops:P0} of the full step's FLOPs, x{fullStep / shallow:F1} faster); " +
            $"UNet for {totalSteps} steps {with:F1}s vs {without:F1}s: x{without / with:F2}"));
    }

    /// <summary>What the transformer blocks at the UNet's full latent resolution cost in a step, and their self-attention:
    /// the most token merging (ToMe) could save there.</summary>
    static void TopResolutionShare(UNet2DConditionModel unet, Tensor latents, Tensor context, double step, bool channelsLast)
    {
        var top = unet.named_modules().Where(m => m.name.StartsWith("down_blocks.0.", StringComparison.Ordinal)
                || m.name.StartsWith($"up_blocks.{unet.Config.BlockOutChannels.Length - 1}.", StringComparison.Ordinal))
            .Select(m => m.module).Distinct().ToList();
        var blocks = top.OfType<Transformer2DModel>().ToList();
        var selfAttention = unet.named_modules().Where(m => top.Contains(m.module) && m.name.EndsWith(".attn1", StringComparison.Ordinal))
            .Select(m => (Attention)m.module).Distinct().ToList();
        if (blocks.Count == 0) return;
        long c = unet.Config.BlockOutChannels[0], h = latents.shape[2], w = latents.shape[3];
        using var nhwc = randn([latents.shape[0], h, w, c]).to(latents.dtype);
        using var x = channelsLast ? nhwc.permute(0, 3, 1, 2) : nhwc.permute(0, 3, 1, 2).contiguous(); // the layout of the UNet's activations
        using var tokens = randn([latents.shape[0], h * w, c]).to(latents.dtype);
        double blockSeconds = blocks.Sum(b => Roofline.Time(() => { using var y = b.call(x, context); }, 2));
        double selfSeconds = selfAttention.Sum(a => Roofline.Time(() => { using var y = a.call(tokens, null); }, 2));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  {blocks.Count} transformer blocks at {h}x{w} latents: {blockSeconds:F2}s ({blockSeconds / step:P0} of a step; x{step / (step - blockSeconds):F2} if they cost nothing); " +
            $"their self-attention {selfSeconds:F2}s ({selfSeconds / step:P0}; token merging at 50% there: at most x{step / (step - 0.75 * selfSeconds):F2})"));
    }

    // Runs this same command for one dtype (and one whole generation) in a new process: peak RSS then belongs to that measurement alone.
    static T MeasureInChild<T>(string modelDir, ScalarType dtype, CommandLine cl, int width, int height, string? generation)
    {
        string report = Path.Combine(Path.GetTempPath(), $"sharpdiffusion-bench-{Environment.ProcessId}-{Name(dtype)}.json");
        var start = new ProcessStartInfo(Environment.ProcessPath!) { UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet")
            start.ArgumentList.Add(typeof(BenchCommand).Assembly.Location);
        start.ArgumentList.Add("bench");
        foreach (var key in new[] { "steps", "total-steps", "threads", "ab-steps", "deep-cache", "generation-steps" })
            if (cl.Int(key) is int value) { start.ArgumentList.Add("--" + key); start.ArgumentList.Add(value.ToString(CultureInfo.InvariantCulture)); }
        start.ArgumentList.Add("--width"); start.ArgumentList.Add(width.ToString(CultureInfo.InvariantCulture));
        start.ArgumentList.Add("--height"); start.ArgumentList.Add(height.ToString(CultureInfo.InvariantCulture));
        foreach (var key in new[] { "channels-last", "attention" })
            if (cl.String(key) is { } value) { start.ArgumentList.Add("--" + key); start.ArgumentList.Add(value); }
        if (cl.Flag("skip-vae")) start.ArgumentList.Add("--skip-vae");
        if (generation is not null) { start.ArgumentList.Add("--generation"); start.ArgumentList.Add(generation); }
        foreach (var a in new[] { "--model", modelDir, "--dtype", Name(dtype), "--report", report }) start.ArgumentList.Add(a);
        using var child = Process.Start(start)!;
        child.WaitForExit();
        try
        {
            if (child.ExitCode != 0 || !File.Exists(report))
                throw new InvalidOperationException($"The {Name(dtype)} {generation ?? ""} measurement failed (exit code {child.ExitCode}).");
            return System.Text.Json.JsonSerializer.Deserialize<T>(File.ReadAllText(report))!;
        }
        finally
        {
            File.Delete(report);
        }
    }

    static Row Measure(string modelDir, LoadOptions options, int width, int height, int steps, int totalSteps, int abSteps, bool skipVae,
        int deepCache)
    {
        var dtype = options.DType;
        Console.WriteLine($"Measuring {Name(dtype)} ...");
        GC.Collect();
        ProcessMemory.ResetPeak();
        var choices = new List<string> { FastPathAB.Describe("layout", options.Layout(), l => l ? "channels-last" : "NCHW") };
        Console.WriteLine($"  {choices[0]}");

        // A single-file checkpoint goes through the single-file loader (key mapping, inferred configs); a folder's
        // components load on their own (the benchmark's random folder has no tokenizer).
        var clock = Stopwatch.StartNew();
        using var single = File.Exists(modelDir) ? Pipelines.StableDiffusionPipeline.FromSingleFile(modelDir, options) : null;
        var folder = single is null ? DiffusersFolder.Open(modelDir) : null;
        using var ownTextEncoder = folder is null ? null : ComponentLoader.LoadTextEncoder(folder.Component("text_encoder"), options);
        using var ownUnet = folder is null ? null : ComponentLoader.LoadUNet(folder.Component("unet"), options);
        using var ownVae = folder is null ? null : ComponentLoader.LoadVae(folder.Component("vae"), options);
        using var ownTextEncoder2 = folder?.ComponentClass("text_encoder_2") is not null ? ComponentLoader.LoadTextEncoder(folder.Component("text_encoder_2"), options) : null;
        var (textEncoder, unet, vae) = single is null ? (ownTextEncoder!, ownUnet!, ownVae!) : (single.TextEncoder, single.Unet, single.Vae);
        var textEncoder2 = single is null ? ownTextEncoder2 : single.TextEncoder2;
        double load = clock.Elapsed.TotalSeconds;
        Console.WriteLine($"  load {load:F1}s");

        using var _ = inference_mode();
        int f = vae.Config.ScaleFactor;
        using var ids = randint(0, textEncoder.Config.VocabSize, [2, 77], dtype: ScalarType.Int64);
        long textFlops;
        using (var counter = new FlopCounter(textEncoder))
        {
            using var warm = textEncoder.call(ids);
            textFlops = counter.Total;
        }
        if (textEncoder2 is not null)
            using (var counter = new FlopCounter(textEncoder2))
            {
                using var warm = textEncoder2.call(ids);
                textFlops += counter.Total;
            }
        double text = Roofline.Time(() =>
        {
            using var h = textEncoder.call(ids);
            using var h2 = textEncoder2?.call(ids);
        }, 3);
        Console.WriteLine($"  text encoder {text * 1000:F0} ms");

        using var context = randn([2, 77, unet.Config.CrossAttentionDim[0]]).to(dtype);
        // SDXL: the pooled embedding and the six time ids join the conditioning.
        using var pooled = unet.Config.AdditionEmbedType is null ? null : randn([2, unet.Config.PooledTextDim]).to(dtype);
        using var timeIds = pooled is null ? null : tensor(new float[] { height, width, 0, 0, height, width, height, width, 0, 0, height, width }).reshape(2, 6);
        var conditioning = new TextConditioning(context) { Pooled = pooled, TimeIds = timeIds };
        using var latents = randn([2, unet.Config.InChannels, height / f, width / f]).to(dtype);
        long stepFlops;
        string split;
        List<(long HeadDim, long Queries, long Keys)> attentionShapes;
        using (var counter = new FlopCounter(unet))
        using (var shapes = new FastPathAB.AttentionShapes(unet))
        {
            using var warm = unet.Forward(latents, 500f, conditioning); // warm-up call, counted; measures attention choices at first use
            stepFlops = counter.Total;
            split = $"conv {counter.Conv / 1e12:F2} + linear {counter.Linear / 1e12:F2} + attention {counter.Attention / 1e12:F2} TFLOP";
            attentionShapes = shapes.Seen;
        }
        foreach (var (d, n, m) in attentionShapes)
        {
            var choice = options.Attention is { } forced ? new Choice<AttentionKernel>(forced, ChoiceSource.Forced)
                : options.FastPaths.Attention(dtype, new Device(options.Device), d, n, m);
            choices.Add(FastPathAB.Describe($"attention d{d} {n}x{m} tokens", choice, k => k.ToString()));
            Console.WriteLine($"  {choices[^1]}");
        }
        var times = new List<double>();
        for (int i = 0; i < steps; i++)
        {
            var stepClock = Stopwatch.StartNew();
            using var noise = unet.Forward(latents, 999f - 50 * i, conditioning);
            times.Add(stepClock.Elapsed.TotalSeconds);
            Console.WriteLine($"  UNet step {i + 1}/{steps}: {times[^1]:F2}s");
        }
        double step = Roofline.Median(times);
        if (deepCache > 1)
            DeepCacheStep(unet, latents, conditioning, deepCache, steps, step, stepFlops, totalSteps);
        TopResolutionShare(unet, latents, context, step, options.Layout().Value);

        long peakBeforeVae = ProcessMemory.PeakResidentBytes ?? 0;
        NativeHeap.Trim(); // as the pipeline does between the denoising loop and the decode
        double vaeSeconds = 0;
        long vaeFlops = 0;
        if (!skipVae)
        {
            using var z = randn([1, vae.Config.LatentChannels, height / f, width / f]).to(vae.parameters().First().dtype);
            using var counter = new FlopCounter(vae);
            var vaeClock = Stopwatch.StartNew();
            using var image = vae.Decode(z);
            vaeSeconds = vaeClock.Elapsed.TotalSeconds;
            vaeFlops = counter.Total;
            Console.WriteLine($"  VAE decode {vaeSeconds:F2}s");
        }
        double total = text + totalSteps * step + vaeSeconds;
        long peak = ProcessMemory.PeakResidentBytes ?? 0; // before the A/B loads a second UNet
        var abs = abSteps == 0 ? [] : FastPathAB.Run(unet, folder?.Component("unet"), options, latents, conditioning, abSteps);
        return new Row(Name(dtype), load, text, step, vaeSeconds, total, peak,
            peakBeforeVae, textFlops, stepFlops, vaeFlops, split, choices, abs);
    }

    /// <summary>A whole generation as `generate` (LowMemory) or `serve` (resident) runs it: open, encode, denoise, decode.</summary>
    static GenerationRow MeasureGeneration(string model, LoadOptions options, string mode, int width, int height, int steps)
    {
        Console.WriteLine($"Measuring a whole {Name(options.DType)} generation, weights {mode} ...");
        GC.Collect();
        ProcessMemory.ResetPeak();
        var clock = Stopwatch.StartNew();
        using var pipeline = Pipelines.StableDiffusionPipeline.Load(model, options);
        double open = clock.Elapsed.TotalSeconds;
        long opened = ProcessMemory.ResidentBytes ?? 0;
        clock.Restart();
        using var result = pipeline.Generate(new Pipelines.GenerationOptions
        {
            Prompts = ["a photograph of an astronaut riding a horse"], Width = width, Height = height, NumInferenceSteps = steps, Seed = 1,
            Scheduler = "euler",
        });
        double generate = clock.Elapsed.TotalSeconds;
        Console.WriteLine($"  open {open:F1}s, generate {generate:F1}s, peak RSS {(ProcessMemory.PeakResidentBytes ?? 0) / 1e9:F2} GB");
        return new GenerationRow(Name(options.DType), mode, open, generate, opened, ProcessMemory.PeakResidentBytes ?? 0);
    }

    static void PrintGenerations(List<GenerationRow> rows, int width, int height, int steps)
    {
        if (rows.Count == 0) return;
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine();
        Console.WriteLine($"Whole generations ({width}x{height}, {steps} steps, each in a process of its own):");
        Console.WriteLine("| dtype | weights | open s | generate s | RSS after open GB | peak RSS GB |");
        Console.WriteLine("|---|---|---:|---:|---:|---:|");
        foreach (var r in rows)
            Console.WriteLine(string.Create(inv, $"| {r.DType} | {r.Mode} | {r.OpenSeconds:F1} | {r.GenerateSeconds:F1} | {r.OpenedBytes / 1e9:F2} | {r.PeakBytes / 1e9:F2} |"));
        Console.WriteLine("resident: as `serve` keeps them (every component loaded at open); low-memory: as `generate` (each part's weights read when it runs, freed after).");
    }

    static void PrintTable(List<Row> rows, int totalSteps, Dictionary<string, double> roofline)
    {
        var inv = CultureInfo.InvariantCulture;
        // A rate and, when the roofline was measured, its fraction of the best conv rate of the same dtype in this run.
        string Rate(Row r, long flops, double seconds)
        {
            if (seconds <= 0) return "–";
            double rate = flops / seconds / 1e9;
            return roofline.TryGetValue(r.DType, out double best) ? string.Create(inv, $"{rate:F0}, {rate / best:P0}") : string.Create(inv, $"{rate:F0}");
        }
        Console.WriteLine();
        Console.WriteLine($"| dtype | load s | text enc ms | UNet step s (GFLOP/s, of roofline) | VAE decode s (GFLOP/s, of roofline) | total {totalSteps} steps s | peak RSS GB (before VAE) |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|");
        foreach (var r in rows)
            Console.WriteLine(string.Create(inv,
                $"| {r.DType} | {r.LoadSeconds:F1} | {r.TextSeconds * 1000:F0} | {r.StepSeconds:F2} ({Rate(r, r.StepFlops, r.StepSeconds)}) | " +
                $"{r.VaeSeconds:F2} ({Rate(r, r.VaeFlops, r.VaeSeconds)}) | {r.TotalSeconds:F1} | {r.PeakBytes / 1e9:F2} ({r.PeakBeforeVaeBytes / 1e9:F2}) |"));
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
        }
        var first = rows[0];
        Console.WriteLine(string.Create(inv, $"FLOPs: text encoder {first.TextFlops / 1e12:F3} TFLOP (2 prompts), UNet step {first.StepFlops / 1e12:F2} TFLOP ({first.StepSplit}), VAE decode {first.VaeFlops / 1e12:F2} TFLOP"));
        foreach (var r in rows.Skip(1))
            Console.WriteLine(string.Create(inv, $"{r.DType} vs {first.DType}: UNet step x{first.StepSeconds / r.StepSeconds:F2}, " +
                $"VAE decode x{(r.VaeSeconds > 0 ? first.VaeSeconds / r.VaeSeconds : 0):F2}, total x{first.TotalSeconds / r.TotalSeconds:F2}"));
    }

    static string Name(ScalarType t) => t switch { ScalarType.BFloat16 => "bfloat16", ScalarType.Float16 => "float16", _ => "float32" };

    static ScalarType ParseDType(string name) => name.ToLowerInvariant() switch
    {
        "float32" or "fp32" => ScalarType.Float32,
        "bfloat16" or "bf16" => ScalarType.BFloat16,
        "float16" or "fp16" => ScalarType.Float16,
        _ => throw new UsageException($"--dtype takes float32, bfloat16, float16 or auto; got '{name}'."),
    };
}
