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

/// <summary>The UNet families' measurements (SD 1.x/2.x, SDXL) in the child process of one dtype: load, text encoders, UNet
/// steps with their FLOPs and op-class times, DeepCache, the VAE decode and the fast-path A/Bs.</summary>
public static class UNetBench
{
    public sealed record Row(string DType, double LoadSeconds, double TextSeconds, double StepSeconds, double VaeSeconds,
        double TotalSeconds, long PeakBytes, long PeakBeforeVaeBytes, long TextFlops, long StepFlops, long VaeFlops, string StepSplit,
        List<string> Choices, List<FastPathAB.Result> ABs, StepProfile? Profile = null);
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

    public static Row Measure(string modelDir, LoadOptions options, int width, int height, int steps, int totalSteps, int abSteps, bool skipVae,
        int deepCache)
    {
        var dtype = options.DType;
        Console.WriteLine($"Measuring {BenchChild.Name(dtype)} ...");
        GC.Collect();
        ProcessMemory.ResetPeak();
        var choices = new List<string> { FastPathAB.Describe("layout", options.Layout(), l => l ? "channels-last" : "NCHW") };
        choices.Add(FastPathAB.Describe("linear", options.LinearChoice(), LinearDecision.Name, "matmul roofline"));
        foreach (var c in choices) Console.WriteLine($"  {c}");

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
        FlopCounter flops;
        List<(long HeadDim, long Queries, long Keys)> attentionShapes;
        using (var counter = flops = new FlopCounter(unet))
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
        OpClassTimes opTimes;
        using (var opTimer = new OpClassTimer(unet)) // the timed steps are the profiled ones: two hooks per layer cost microseconds
        {
            for (int i = 0; i < steps; i++)
            {
                var stepClock = Stopwatch.StartNew();
                using var noise = unet.Forward(latents, 999f - 50 * i, conditioning);
                times.Add(stepClock.Elapsed.TotalSeconds);
                Console.WriteLine($"  UNet step {i + 1}/{steps}: {times[^1]:F2}s");
            }
            opTimes = opTimer.Result(times.Sum(), steps);
        }
        var profile = StepProfile.From(flops, opTimes);
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
        return new Row(BenchChild.Name(dtype), load, text, step, vaeSeconds, total, peak,
            peakBeforeVae, textFlops, stepFlops, vaeFlops, split, choices, abs, profile);
    }
}
