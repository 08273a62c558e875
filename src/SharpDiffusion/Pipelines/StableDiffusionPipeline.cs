using System.Diagnostics;
using SharpDiffusion.Loading;
using SharpDiffusion.Models.Clip;
using SharpDiffusion.Models.UNet;
using SharpDiffusion.Models.Vae;
using SharpDiffusion.Schedulers;
using SharpDiffusion.Text;
using static TorchSharp.torch;

namespace SharpDiffusion.Pipelines;

/// <summary>
/// diffusers' StableDiffusionPipeline (SD 1.x/2.x text-to-image). It owns the order of the steps and nothing else:
/// tokenize → encode [uncond, cond] → seeded latents × init_noise_sigma → per timestep: scale, UNet, guidance,
/// scheduler step → VAE decode of latents / scaling_factor → [0, 1] → uint8.
/// </summary>
public sealed class StableDiffusionPipeline : IDisposable
{
    public ClipTokenizer Tokenizer { get; }
    public ClipTextModel TextEncoder { get; }
    public UNet2DConditionModel Unet { get; }
    public AutoencoderKL Vae { get; }
    /// <summary>The model's scheduler_config.json; every scheduler is built from it (diffusers' from_config).</summary>
    public SchedulerConfig SchedulerConfig { get; }
    /// <summary>A short name for the model (its folder name), written into image metadata.</summary>
    public string ModelName { get; }
    public Device Device { get; }
    public ScalarType DType { get; }

    public StableDiffusionPipeline(ClipTokenizer tokenizer, ClipTextModel textEncoder, UNet2DConditionModel unet, AutoencoderKL vae,
        SchedulerConfig schedulerConfig, string modelName, Device device, ScalarType dtype)
    {
        Tokenizer = tokenizer;
        TextEncoder = textEncoder;
        Unet = unet;
        Vae = vae;
        SchedulerConfig = schedulerConfig;
        ModelName = modelName;
        Device = device;
        DType = dtype;
    }

    /// <summary>Loads a diffusers folder (model_index.json, tokenizer/, text_encoder/, unet/, vae/, scheduler/).</summary>
    public static StableDiffusionPipeline FromPretrained(string modelDir, LoadOptions? options = null)
    {
        options ??= new LoadOptions();
        var folder = DiffusersFolder.Open(modelDir);
        var tokenizer = ClipTokenizer.FromDirectory(folder.Component("tokenizer"));
        var textEncoder = ComponentLoader.LoadTextEncoder(folder.Component("text_encoder"), options);
        var unet = ComponentLoader.LoadUNet(folder.Component("unet"), options);
        var vae = ComponentLoader.LoadVae(folder.Component("vae"), options);
        var schedulerConfig = SchedulerConfig.Load(Path.Combine(folder.Component("scheduler"), "scheduler_config.json"));
        return new StableDiffusionPipeline(tokenizer, textEncoder, unet, vae, schedulerConfig, folder.Name, new Device(options.Device), options.DType);
    }

    public int VaeScaleFactor => Vae.Config.ScaleFactor;

    /// <summary>diffusers' default size: unet.config.sample_size × vae_scale_factor.</summary>
    public int DefaultSize => (Unet.Config.SampleSize ?? 64) * VaeScaleFactor;

    /// <summary>The scheduler a call uses: the named one, else the model's own, both from the model's config.</summary>
    public IScheduler CreateScheduler(string? name, IReadOnlyDictionary<string, object?>? overrides = null)
    {
        var config = SchedulerConfig;
        foreach (var (key, value) in overrides ?? new Dictionary<string, object?>())
            config = config.With(key, value);
        return name is null ? SchedulerFactory.FromConfig(config) : SchedulerFactory.Create(name, config);
    }

    /// <summary>Validates options before any work, with messages that say how to fix them.</summary>
    public (int Width, int Height) Validate(GenerationOptions o)
    {
        if (o.Prompts.Count == 0)
            throw new ArgumentException("At least one prompt is needed.");
        if (o.NegativePrompts is { Count: > 1 } n && n.Count != o.Prompts.Count)
            throw new ArgumentException($"Give one negative prompt for all prompts, or one per prompt ({o.Prompts.Count}); got {n.Count}.");
        int width = o.Width ?? DefaultSize, height = o.Height ?? DefaultSize;
        int multiple = Math.Max(8, VaeScaleFactor);
        if (width <= 0 || height <= 0 || width % multiple != 0 || height % multiple != 0)
            throw new ArgumentException($"Width and height must be positive multiples of {multiple}; got {width}x{height}. Try {Round(width, multiple)}x{Round(height, multiple)}.");
        if (o.NumInferenceSteps < 1)
            throw new ArgumentException($"The number of steps must be at least 1; got {o.NumInferenceSteps}.");
        if (o.NumImagesPerPrompt < 1)
            throw new ArgumentException($"Images per prompt must be at least 1; got {o.NumImagesPerPrompt}.");
        if (double.IsNaN(o.GuidanceScale) || double.IsInfinity(o.GuidanceScale))
            throw new ArgumentException("The guidance scale must be a finite number.");
        return (width, height);
    }

    static int Round(int value, int multiple) => Math.Max(multiple, (int)Math.Round(value / (double)multiple) * multiple);

    /// <summary>Text → last_hidden_state [B, 77, D] in the model dtype.</summary>
    public Tensor EncodePrompt(IReadOnlyList<string> texts)
    {
        using var scope = NewDisposeScope();
        using var ids = TokenIds(texts);
        return TextEncoder.call(ids.to(Device)).MoveToOuterDisposeScope();
    }

    /// <summary>Token ids [B, 77] int64 on the CPU.</summary>
    public Tensor TokenIds(IReadOnlyList<string> texts) => Tokenizer.EncodeBatch(texts);

    /// <summary>The initial noise: one randn call for the whole batch on the CPU generator, in float32
    /// (so a seed means the same image on every device), then moved.</summary>
    public Tensor PrepareLatents(int batch, int height, int width, Generator generator)
    {
        int f = VaeScaleFactor;
        using var noise = randn([batch, Unet.Config.InChannels, height / f, width / f], dtype: ScalarType.Float32, generator: generator);
        return noise.to(Device);
    }

    /// <summary>Latents → image in [0, 1], [B, H, W, 3] float32 on the CPU.</summary>
    public Tensor DecodeLatents(Tensor latents, bool tiled = false)
    {
        using var scope = NewDisposeScope();
        var z = (latents / Vae.Config.ScalingFactor).to(DType);
        var decoded = (tiled ? TiledDecoder.Decode(Vae, z) : Vae.Decode(z)).to(ScalarType.Float32);
        var image = (decoded / 2 + 0.5).clamp(0.0, 1.0);
        return image.permute(0, 2, 3, 1).contiguous().cpu().MoveToOuterDisposeScope();
    }

    /// <summary>Runs text-to-image. <paramref name="onStepEnd"/> sees (step index, latents after the step).</summary>
    public GenerationResult Generate(GenerationOptions options, Action<GenerationProgress>? progress = null,
        Action<int, Tensor>? onStepEnd = null, CancellationToken cancellation = default)
    {
        var (width, height) = Validate(options);
        var scheduler = CreateScheduler(options.Scheduler, options.SchedulerOptions);
        using var schedulerHistory = scheduler as IDisposable; // multistep schedulers keep past model outputs
        long seed = options.Seed ?? Random.Shared.NextInt64(0, uint.MaxValue);
        var clock = Stopwatch.StartNew();
        using var inference = inference_mode();

        int perPrompt = options.NumImagesPerPrompt;
        var prompts = options.Prompts.SelectMany(p => Enumerable.Repeat(p, perPrompt)).ToList();
        var negatives = options.Prompts.SelectMany((_, i) => Enumerable.Repeat(options.NegativePromptFor(i), perPrompt)).ToList();
        bool guided = options.GuidanceScale > 1.0;

        progress?.Invoke(new GenerationProgress("encode", 0, 0, clock.Elapsed));
        using var context = guided ? EncodePrompt([.. negatives, .. prompts]) : EncodePrompt(prompts); // [(2)B, 77, D], uncond first

        using var generator = new Generator((ulong)seed);
        scheduler.SetTimesteps(options.NumInferenceSteps);
        using var noise = PrepareLatents(prompts.Count, height, width, generator);
        var latents = noise * scheduler.InitNoiseSigma;

        var timesteps = scheduler.Timesteps;
        for (int i = 0; i < timesteps.Count; i++)
        {
            cancellation.ThrowIfCancellationRequested();
            float t = timesteps[i];
            using (var step = NewDisposeScope())
            {
                var modelInput = scheduler.ScaleModelInput(guided ? cat([latents, latents], 0) : latents, t);
                var noisePred = Unet.Forward(modelInput.to(DType), t, context).to(ScalarType.Float32);
                if (guided)
                    noisePred = Guidance.Apply(noisePred, options.GuidanceScale, options.GuidanceRescale);
                var next = scheduler.Step(noisePred, t, latents, generator).MoveToOuterDisposeScope();
                latents.Dispose();
                latents = next;
            }
            onStepEnd?.Invoke(i, latents);
            progress?.Invoke(new GenerationProgress("denoise", i + 1, timesteps.Count, clock.Elapsed));
        }

        Diagnostics.NativeHeap.Trim(); // the UNet's freed activations, before the VAE's large ones
        progress?.Invoke(new GenerationProgress("decode", timesteps.Count, timesteps.Count, clock.Elapsed));
        var imageFloat = DecodeLatents(latents, options.VaeTiling);
        var images = ToImages(imageFloat, prompts, negatives);
        progress?.Invoke(new GenerationProgress("done", timesteps.Count, timesteps.Count, clock.Elapsed));
        return new GenerationResult
        {
            Images = images,
            Seed = seed,
            SchedulerName = scheduler.Name,
            Width = width,
            Height = height,
            Latents = latents,
            ImageFloat = imageFloat,
        };
    }

    /// <summary>uint8 = round(image·255), round half to even, as diffusers' numpy_to_pil.</summary>
    public static Tensor ToUInt8(Tensor imageFloat)
    {
        using var scaled = imageFloat * 255.0f;
        using var rounded = scaled.round();
        return rounded.to(ScalarType.Byte);
    }

    static List<GeneratedImage> ToImages(Tensor imageFloat, List<string> prompts, List<string> negatives)
    {
        using var bytes = ToUInt8(imageFloat);
        int h = (int)bytes.shape[1], w = (int)bytes.shape[2];
        var all = bytes.data<byte>().ToArray();
        int size = h * w * 3;
        return Enumerable.Range(0, (int)bytes.shape[0])
            .Select(b => new GeneratedImage(w, h, all[(b * size)..((b + 1) * size)], prompts[b], negatives[b]))
            .ToList();
    }

    public void Dispose()
    {
        TextEncoder.Dispose();
        Unet.Dispose();
        Vae.Dispose();
    }
}
