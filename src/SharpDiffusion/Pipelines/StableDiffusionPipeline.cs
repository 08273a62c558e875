using System.Diagnostics;
using SharpDiffusion.Adapters;
using SharpDiffusion.Imaging;
using SharpDiffusion.Loading;
using SharpDiffusion.Loading.SingleFile;
using SharpDiffusion.Models.Clip;
using SharpDiffusion.Models.UNet;
using SharpDiffusion.Models.Vae;
using SharpDiffusion.Schedulers;
using SharpDiffusion.Text;
using static TorchSharp.torch;

namespace SharpDiffusion.Pipelines;

/// <summary>
/// A loaded SD 1.x/2.x model and the order of the steps of every task diffusers has a pipeline for:
/// text-to-image (StableDiffusionPipeline), img2img (StableDiffusionImg2ImgPipeline) and inpainting
/// (StableDiffusionInpaintPipeline). <see cref="Generate"/> encodes the prompts, lets the task
/// (<see cref="TextToImage"/>, <see cref="ImageToImage"/>, <see cref="Inpainting"/>) make its initial latents,
/// timesteps and step hook, runs the shared <see cref="DenoisingLoop"/>, decodes and converts to uint8.
/// One generation at a time per pipeline: a call's LoRAs are merged into its weights until the call returns
/// (<see cref="LoraMerger"/>), and <see cref="LoadTextualInversion"/> extends its tokenizer and text encoder.
/// </summary>
public sealed class StableDiffusionPipeline : IDisposable
{
    public ClipTokenizer Tokenizer { get; }
    public ClipTextModel TextEncoder => (ClipTextModel)Weights.TextEncoder.Module;
    public UNet2DConditionModel Unet => (UNet2DConditionModel)Weights.Unet.Module;
    public AutoencoderKL Vae => (AutoencoderKL)Weights.Vae.Module;
    /// <summary>Where the components' weights are: resident, or read only while each runs (<see cref="LoadOptions.LowMemory"/>).
    /// Code outside the pipeline that runs a component directly holds a <see cref="ComponentWeights.Use"/> meanwhile.</summary>
    public PipelineWeights Weights { get; }
    /// <summary>The model's scheduler_config.json; every scheduler is built from it (diffusers' from_config).</summary>
    public SchedulerConfig SchedulerConfig { get; }
    /// <summary>A short name for the model (its folder name), written into image metadata.</summary>
    public string ModelName { get; }
    public Device Device { get; }
    public ScalarType DType { get; }
    public PromptEncoder PromptEncoder { get; }
    /// <summary>SDXL's second tokenizer and text encoder (CLIPTextModelWithProjection); null for SD 1.x/2.x.</summary>
    public ClipTokenizer? Tokenizer2 { get; }
    public ClipTextModel? TextEncoder2 => Weights.TextEncoder2?.Module as ClipTextModel;
    /// <summary>SDXL: encodes both encoders' prompts, the pooled embedding and the size/crop time ids.</summary>
    public SdxlPromptEncoder? XLPromptEncoder { get; }
    /// <summary>An SDXL model (two text encoders, the UNet's text_time embedding).</summary>
    public bool IsXL => TextEncoder2 is not null;
    /// <summary>The VAE's dtype: float32 when a float16 model's VAE must be upcast (force_upcast).</summary>
    public ScalarType VaeDType { get; }

    /// <summary>A pipeline of loaded components (their weights stay in memory).</summary>
    public StableDiffusionPipeline(ClipTokenizer tokenizer, ClipTextModel textEncoder, UNet2DConditionModel unet, AutoencoderKL vae,
        SchedulerConfig schedulerConfig, string modelName, Device device, ScalarType dtype,
        ClipTokenizer? tokenizer2 = null, ClipTextModel? textEncoder2 = null, bool forceZerosForEmptyPrompt = true)
        : this(tokenizer, new PipelineWeights(ComponentWeights.Loaded(textEncoder), ComponentWeights.Loaded(unet), ComponentWeights.Loaded(vae),
            textEncoder2 is null ? null : ComponentWeights.Loaded(textEncoder2)), schedulerConfig, modelName, device, dtype, tokenizer2, forceZerosForEmptyPrompt)
    {
    }

    /// <summary>A pipeline of components whose weights may be read only while each runs (<see cref="ComponentLoader"/>).</summary>
    public StableDiffusionPipeline(ClipTokenizer tokenizer, PipelineWeights weights, SchedulerConfig schedulerConfig, string modelName, Device device,
        ScalarType dtype, ClipTokenizer? tokenizer2 = null, bool forceZerosForEmptyPrompt = true)
    {
        Weights = weights;
        var (textEncoder, unet, vae, textEncoder2) = (TextEncoder, Unet, Vae, TextEncoder2);
        if ((tokenizer2 is null) != (textEncoder2 is null))
            throw new ArgumentException("SDXL needs both tokenizer_2 and text_encoder_2.");
        if ((textEncoder2 is not null) != (unet.Config.AdditionEmbedType == "text_time"))
            throw new InvalidDataException(textEncoder2 is null
                ? "The UNet has SDXL's text_time embedding but there is no second text encoder (text_encoder_2)."
                : "There is a second text encoder (text_encoder_2) but the UNet has no SDXL text_time embedding.");
        if (textEncoder2 is not null && textEncoder2.Config.ProjectionDim is null)
            throw new InvalidDataException("SDXL's text_encoder_2 must be a CLIPTextModelWithProjection (its config names that architecture and a projection_dim).");
        Tokenizer = tokenizer;
        SchedulerConfig = schedulerConfig;
        ModelName = modelName;
        Device = device;
        DType = dtype;
        PromptEncoder = new PromptEncoder(tokenizer, textEncoder, device);
        Tokenizer2 = tokenizer2;
        if (tokenizer2 is not null && textEncoder2 is not null)
            XLPromptEncoder = new SdxlPromptEncoder(tokenizer, textEncoder, tokenizer2, textEncoder2, device, forceZerosForEmptyPrompt);
        VaeDType = vae.parameters().FirstOrDefault()?.dtype ?? dtype;
    }

    /// <summary>Loads a diffusers folder (model_index.json, tokenizer/, text_encoder/, unet/, vae/, scheduler/).</summary>
    public static StableDiffusionPipeline FromPretrained(string modelDir, LoadOptions? options = null)
    {
        options ??= new LoadOptions();
        var folder = DiffusersFolder.Open(modelDir);
        if (folder.IsXL && folder.ComponentClass("text_encoder") is null)
            throw new NotSupportedException($"{modelDir} is an SDXL refiner (text_encoder_2 only, aesthetic-score time ids), which is not supported; use an SDXL base model.");
        var tokenizer = ClipTokenizer.FromDirectory(folder.Component("tokenizer"));
        var schedulerConfig = SchedulerConfig.Load(Path.Combine(folder.Component("scheduler"), "scheduler_config.json"));
        var loaded = new List<ComponentWeights>();
        ComponentWeights Load(Func<string, LoadOptions, ComponentWeights> component, string name)
        {
            var weights = component(folder.Component(name), options);
            loaded.Add(weights);
            return weights;
        }
        try
        {
            var textEncoder = Load(ComponentLoader.TextEncoder, "text_encoder");
            CheckVocabulary(folder, "tokenizer", tokenizer, "text_encoder", (ClipTextModel)textEncoder.Module);
            var unet = Load(ComponentLoader.UNet, "unet");
            var vae = Load(ComponentLoader.Vae, "vae");
            ClipTokenizer? tokenizer2 = null;
            ComponentWeights? textEncoder2 = null;
            if (folder.IsXL)
            {
                tokenizer2 = ClipTokenizer.FromDirectory(folder.Component("tokenizer_2"));
                textEncoder2 = Load(ComponentLoader.TextEncoder, "text_encoder_2");
                CheckVocabulary(folder, "tokenizer_2", tokenizer2, "text_encoder_2", (ClipTextModel)textEncoder2.Module);
            }
            return new StableDiffusionPipeline(tokenizer, new PipelineWeights(textEncoder, unet, vae, textEncoder2), schedulerConfig, folder.Name,
                new Device(options.Device), options.DType, tokenizer2, folder.ForceZerosForEmptyPrompt);
        }
        catch
        {
            foreach (var weights in loaded) weights.Module.Dispose();
            throw;
        }
    }

    static void CheckVocabulary(DiffusersFolder folder, string tokenizerName, ClipTokenizer tokenizer, string encoderName, ClipTextModel encoder)
    {
        if (tokenizer.VocabSize > encoder.Config.VocabSize)
            throw new InvalidDataException($"{Path.Combine(folder.Component(tokenizerName), "vocab.json")} has {tokenizer.VocabSize} tokens but the text encoder " +
                $"embeds {encoder.Config.VocabSize} ({encoderName}/config.json vocab_size): the tokenizer belongs to another model.");
    }

    /// <summary>Loads a single-file checkpoint in the original LDM/CompVis layout (SD 1.x/2.x, inpainting too), as
    /// AUTOMATIC1111 and ComfyUI use them: see <see cref="SingleFileLoader"/>. The architecture comes from the tensors,
    /// with <paramref name="singleFile"/>'s LDM .yaml for what they cannot tell; what the file lacks is the project's
    /// (the CLIP tokenizer files, SD's default scheduler).</summary>
    public static StableDiffusionPipeline FromSingleFile(string path, LoadOptions? options = null, SingleFileOptions? singleFile = null)
    {
        options ??= new LoadOptions();
        var c = SingleFileLoader.Load(path, options, singleFile);
        return new StableDiffusionPipeline(c.Tokenizer, c.Weights, c.SchedulerConfig, Path.GetFileNameWithoutExtension(path),
            new Device(options.Device), options.DType, c.Tokenizer2, forceZerosForEmptyPrompt: true)
        {
            _modelHash = new Lazy<string>(() => Loading.ModelHash.Compute(path)),
            LoadWarnings = c.Checkpoint.Warnings,
        };
    }

    /// <summary>AUTOMATIC1111's "Model hash" (first 10 hex digits of the file's SHA-256) of a single-file checkpoint,
    /// computed on first use; null for a diffusers folder.</summary>
    public string? ModelHash => _modelHash?.Value;
    Lazy<string>? _modelHash;

    /// <summary>What loading had to assume (e.g. an SD 2.x file's prediction type).</summary>
    public IReadOnlyList<string> LoadWarnings { get; private init; } = [];

    public int VaeScaleFactor => Vae.Config.ScaleFactor;

    /// <summary>Sizes must be multiples of this: 8, or the VAE's factor when larger.</summary>
    public int SizeMultiple => Math.Max(8, VaeScaleFactor);

    /// <summary>diffusers' default size: unet.config.sample_size × vae_scale_factor.</summary>
    public int DefaultSize => (Unet.Config.SampleSize ?? 64) * VaeScaleFactor;

    /// <summary>The scheduler a call uses: the named one, else the model's own, both from the model's config; an
    /// override the scheduler does not have is refused (<see cref="SchedulerFactory.Create(string?, SchedulerConfig, IReadOnlyDictionary{string, object?}?)"/>).</summary>
    public IScheduler CreateScheduler(string? name, IReadOnlyDictionary<string, object?>? overrides = null) =>
        SchedulerFactory.Create(name, SchedulerConfig, overrides);

    /// <summary>Validates options before any work (<see cref="GenerationOptions.Validate"/> plus what depends on the
    /// model) and returns the size the call works at.</summary>
    public (int Width, int Height) Validate(GenerationOptions o)
    {
        o.Validate();
        int multiple = SizeMultiple;
        var (width, height) = o.Image is { } image
            ? ImageInputs.WorkingSize(image, o.Width, o.Height, multiple)
            : (o.Width ?? DefaultSize, o.Height ?? DefaultSize);
        if (width % multiple != 0 || height % multiple != 0)
            throw new ArgumentException($"Width and height must be positive multiples of {multiple} for this model; got {width}x{height}. Try {Round(width, multiple)}x{Round(height, multiple)}.");
        if (o.ClipSkip > TextEncoder.Config.NumHiddenLayers)
            throw new ArgumentException($"Clip skip {o.ClipSkip} does not fit this text encoder of {TextEncoder.Config.NumHiddenLayers} layers; use 1 to {TextEncoder.Config.NumHiddenLayers}.");
        if (o.Task == GenerationTask.Inpainting && Unet.Config.InChannels is not (4 or 9))
            throw new NotSupportedException($"Inpainting needs a UNet with 9 input channels (an inpainting model) or 4; this one has {Unet.Config.InChannels}.");
        if (o.Task != GenerationTask.Inpainting && Unet.Config.InChannels != 4)
            throw new ArgumentException($"This is an inpainting model (UNet in_channels {Unet.Config.InChannels}): give an image and a mask.");
        if (!IsXL && (o.Prompts2 is not null || o.NegativePrompts2 is not null || o.OriginalSize is not null || o.TargetSize is not null
                      || o.CropsCoordsTopLeft is not null || o.NegativeOriginalSize is not null || o.NegativeTargetSize is not null || o.NegativeCropsCoordsTopLeft is not null))
            throw new ArgumentException("prompt_2, negative_prompt_2 and the size/crop conditioning are for SDXL models; this is an SD 1.x/2.x model.");
        if (IsXL && o.PromptEmbeds is not null && o.PooledPromptEmbeds is null)
            throw new ArgumentException("SDXL prompt embeddings need their pooled embeddings too (PooledPromptEmbeds, diffusers' pooled_prompt_embeds).");
        if (!IsXL && o.PooledPromptEmbeds is not null)
            throw new ArgumentException("Pooled prompt embeddings are for SDXL models; this is an SD 1.x/2.x model.");
        if (IsXL && o.PooledPromptEmbeds is { } pooled && pooled.shape[1] != Unet.Config.PooledTextDim)
            throw new ArgumentException($"Pooled prompt embeddings have {pooled.shape[1]} channels; this SDXL model takes {Unet.Config.PooledTextDim}.");
        if (IsXL && o.PromptSyntax == PromptSyntax.A1111 && (o.Prompts2 is not null || o.NegativePrompts2 is not null))
            throw new ArgumentException("prompt_2 and negative_prompt_2 are not part of AUTOMATIC1111's syntax (it gives both SDXL text encoders the same prompt); use the plain syntax for them.");
        if (IsXL && o.ClipSkip > TextEncoder2!.Config.NumHiddenLayers)
            throw new ArgumentException($"Clip skip {o.ClipSkip} does not fit this SDXL text encoder of {TextEncoder2.Config.NumHiddenLayers} layers.");
        if (o.PromptEmbeds is { } pe && pe.shape[2] != Unet.Config.CrossAttentionDim[0])
            throw new ArgumentException($"Prompt embeddings have {pe.shape[2]} channels; this model's UNet takes {Unet.Config.CrossAttentionDim[0]}.");
        return (width, height);
    }

    static int Round(int value, int multiple) => Math.Max(multiple, (int)Math.Round(value / (double)multiple) * multiple);

    /// <summary>Text → last_hidden_state [B, 77, D] in the model dtype (plain syntax, diffusers).</summary>
    public Tensor EncodePrompt(IReadOnlyList<string> texts)
    {
        using var use = Weights.UseTextEncoders();
        return PromptEncoder.EncodePlain(texts);
    }

    /// <summary>Token ids [B, 77] int64 on the CPU.</summary>
    public Tensor TokenIds(IReadOnlyList<string> texts) => Tokenizer.EncodeBatch(texts.Select(Tokenizer.ExpandMultiVectorTokens).ToList());

    /// <summary>
    /// diffusers' load_textual_inversion: the embedding's tokens (<c>tok</c>, <c>tok_1</c>, … for several vectors) are added to
    /// this pipeline's tokenizer and its rows appended to this pipeline's text encoder, for every later call. Returns the tokens.
    /// Not thread-safe: load before generating.
    /// </summary>
    public IReadOnlyList<string> LoadTextualInversion(string path, string? token = null)
    {
        using var embedding = TextualInversionFile.Load(path, token);
        if (IsXL != embedding.Vectors2 is not null)
            throw new InvalidDataException(IsXL
                ? $"{path}: an SD 1.x/2.x embedding (one set of vectors); SDXL needs one per text encoder (clip_l and clip_g)."
                : $"{path}: an SDXL embedding (clip_l and clip_g); this is an SD 1.x/2.x model.");
        CheckWidth(path, embedding.Vectors, TextEncoder);
        if (IsXL) CheckWidth(path, embedding.Vectors2!, TextEncoder2!);
        var tokens = embedding.Tokens;
        if (tokens.FirstOrDefault(t => Tokenizer.TryGetTokenId(t, out _) || Tokenizer2?.TryGetTokenId(t, out _) == true) is { } taken)
            throw new ArgumentException($"{path}: the token '{taken}' is already in the tokenizer; give another trigger word.");
        using var noGrad = no_grad();
        Weights.TextEncoder.Pin(); // changed in memory from here on: its files no longer describe it
        Weights.TextEncoder2?.Pin();
        var ids = Tokenizer.AddTokens(tokens);
        TextEncoder.SetTokenEmbeddings(Tokenizer.VocabSize, ids, embedding.Vectors);
        if (IsXL)
        {
            var ids2 = Tokenizer2!.AddTokens(tokens);
            TextEncoder2!.SetTokenEmbeddings(Tokenizer2.VocabSize, ids2, embedding.Vectors2!);
        }
        return tokens;
    }

    static void CheckWidth(string path, Tensor vectors, ClipTextModel encoder)
    {
        long width = encoder.Config.HiddenSize;
        if (vectors.shape[1] != width)
            throw new InvalidDataException($"{path}: the embedding has {vectors.shape[1]} channels but this text encoder takes {width}: it was trained for another model.");
    }

    /// <summary>Every embedding file of <paramref name="directory"/> (.safetensors, .pt, .bin, in name order), each triggered
    /// by its file name (AUTOMATIC1111's rule). A file that is not an embedding (unknown layout, wrong width, unreadable
    /// pickle) is skipped and reported, as AUTOMATIC1111 skips it.</summary>
    public (IReadOnlyList<string> Tokens, IReadOnlyList<string> Skipped) LoadTextualInversionDirectory(string directory)
    {
        var (tokens, skipped) = (new List<string>(), new List<string>());
        foreach (var file in Directory.GetFiles(directory).Order(StringComparer.Ordinal)
                     .Where(f => Path.GetExtension(f).ToLowerInvariant() is ".safetensors" or ".pt" or ".bin"))
        {
            try { tokens.AddRange(LoadTextualInversion(file, Path.GetFileNameWithoutExtension(file))); }
            catch (Exception e) when (e is NotSupportedException or InvalidDataException or ArgumentException) { skipped.Add(e.Message); }
        }
        return (tokens, skipped);
    }

    /// <summary>Noise: one randn call on the CPU generator in float32 (so a seed means the same image on every
    /// device, as diffusers' randn_tensor), then moved to the device.</summary>
    public Tensor DrawNoise(long[] shape, Generator generator)
    {
        using var noise = randn(shape, dtype: ScalarType.Float32, generator: generator);
        return noise.to(Device);
    }

    /// <summary>Image [1, 3, H, W] in [−1, 1] → scaling_factor · a sample of the VAE posterior, [1, 4, h, w] float32
    /// (diffusers' retrieve_latents(sample_mode="sample") with the pipeline generator: one draw).</summary>
    public Tensor EncodeImage(Tensor image, Generator generator)
    {
        using var scope = NewDisposeScope();
        using var use = Weights.Vae.Use();
        using var posterior = Vae.Encode(image.to(VaeDType).to(Device));
        var sample = posterior.Sample(generator).to(ScalarType.Float32);
        return (sample * Vae.Config.ScalingFactor).MoveToOuterDisposeScope();
    }

    /// <summary>Latents → image in [0, 1], [B, H, W, 3] float32 on the CPU.</summary>
    public Tensor DecodeLatents(Tensor latents, bool tiled = false)
    {
        using var scope = NewDisposeScope();
        using var use = Weights.Vae.Use();
        var z = (latents / Vae.Config.ScalingFactor).to(VaeDType);
        var decoded = (tiled ? TiledDecoder.Decode(Vae, z) : Vae.Decode(z)).to(ScalarType.Float32);
        var image = (decoded / 2 + 0.5).clamp(0.0, 1.0);
        return image.permute(0, 2, 3, 1).contiguous().cpu().MoveToOuterDisposeScope();
    }

    /// <summary>Runs the task the options ask for. <paramref name="onStepEnd"/> sees (step index, latents after the step);
    /// <paramref name="onDenoised"/> (step index, the clean latents x̂₀ the model predicts there), for previews
    /// (<see cref="LatentPreview"/>).</summary>
    public GenerationResult Generate(GenerationOptions options, IProgress<GenerationProgress>? progress = null,
        Action<int, Tensor>? onStepEnd = null, CancellationToken cancellation = default, Action<int, Tensor>? onDenoised = null)
    {
        var (width, height) = Validate(options);
        var scheduler = CreateScheduler(options.Scheduler, options.SchedulerOptions);
        using var schedulerHistory = scheduler as IDisposable; // multistep schedulers keep past model outputs
        long seed = options.Seed is >= 0 and long given ? given : Random.Shared.NextInt64(0, uint.MaxValue);
        var clock = Stopwatch.StartNew();
        var warnings = options.Advisories().ToList();
        using var inference = inference_mode();

        int perPrompt = options.NumImagesPerPrompt, count = options.PromptCount;
        var prompts = Enumerable.Range(0, count).SelectMany(i => Enumerable.Repeat(PromptText(options, i), perPrompt)).ToList();
        // A1111 cuts <lora:…> out before parsing emphasis; the tags' files are loaded for this call.
        using var tagged = options.PromptSyntax == PromptSyntax.A1111 ? LoraPromptTags.Resolve(prompts, options.LoraDirectory) : null;
        var encoded = tagged?.Prompts.ToList() ?? prompts;
        warnings.AddRange(tagged?.Warnings ?? []);
        var loras = options.Loras.Concat(tagged?.Loras ?? []).ToList();
        // With LowMemory each component's weights are read just before it runs and freed after (the UNet's early when
        // LoRAs are merged into it); a LoRA merged into weights that leave is not restored: they are read again next time.
        using var textEncoders = Weights.UseTextEncoders();
        using var unetForLoras = loras.Count > 0 ? Weights.Unet.Use() : null;
        using var merged = LoraMerger.Apply(loras, Unet, TextEncoder, TextEncoder2, restores: m => !Weights.Of(m).LeavesAfterUse); // until the call ends
        var negatives = Enumerable.Range(0, count).SelectMany(i => Enumerable.Repeat(options.NegativePromptFor(i), perPrompt)).ToList();
        var guidance = new GuidanceSettings(options.GuidanceScale, options.GuidanceRescale);
        int steps = options.DenoisingSteps;
        // With LowMemory the UNet's weights come in after this check: what they will take is not available to activations.
        long? available = MemoryEstimate.AvailableBytes() - (Weights.Unet.Resident ? 0 : Weights.Unet.Bytes);
        bool tiled = options.VaeTiling || NeedsTiling(MemoryEstimate.For(this, prompts.Count, guidance.Enabled, width, height),
            available, width, height, warnings);

        progress?.Report(new GenerationProgress(GenerationStage.Encoding, 0, steps, clock.Elapsed));
        using var conditioning = IsXL
            ? EncodeXL(options, encoded, guidance.Enabled, width, height, warnings)
            : new Conditioning(EncodeConditioning(options, encoded, negatives, guidance.Enabled, warnings)); // [(2)B, T, D], uncond first
        textEncoders.Dispose();
        using var generator = new Generator((ulong)seed);
        scheduler.SetTimesteps(options.NumInferenceSteps);
        using var inputs = options.Image is null ? null : ImageInputs.Prepare(options, width, height, warnings);
        using var start = options.Task switch
        {
            GenerationTask.TextToImage => TextToImage.Prepare(this, options, scheduler, prompts.Count, width, height, generator),
            GenerationTask.ImageToImage => ImageToImage.Prepare(this, inputs!.Image, options.EffectiveStrength, scheduler,
                options.NumInferenceSteps, prompts.Count, generator),
            _ => Inpainting.Prepare(this, inputs!.Image, inputs.Mask!, options.EffectiveStrength, scheduler,
                options.NumInferenceSteps, prompts.Count, guidance.Enabled, generator),
        };

        using var featureCache = options.DeepCacheInterval > 1 ? new DeepFeatureCache(options.DeepCacheInterval) : null;
        var plan = new DenoisingPlan(scheduler, start.Timesteps, conditioning, guidance, generator, start.Hook)
        {
            OnDenoised = onDenoised,
            FeatureCache = featureCache,
        };
        Tensor latents;
        using (Weights.Unet.Use())
        {
            unetForLoras?.Dispose();
            latents = new DenoisingLoop(Unet, DType).Run(start.Latents, plan, (i, l) =>
            {
                onStepEnd?.Invoke(i, l);
                progress?.Report(new GenerationProgress(GenerationStage.Denoising, i + 1, start.Timesteps.Count, clock.Elapsed));
            }, cancellation);
        }

        Diagnostics.NativeHeap.Trim(); // the UNet's freed activations, before the VAE's large ones
        progress?.Report(new GenerationProgress(GenerationStage.Decoding, steps, steps, clock.Elapsed));
        var imageFloat = DecodeLatents(latents, tiled);
        if (options.PasteOriginal && inputs?.SoftMask is not null)
        {
            var pasted = inputs.PasteOriginal(imageFloat);
            imageFloat.Dispose();
            imageFloat = pasted;
        }
        var images = ToImages(imageFloat, prompts, negatives);
        progress?.Report(new GenerationProgress(GenerationStage.Done, steps, steps, clock.Elapsed));
        return new GenerationResult
        {
            Images = images,
            Seed = seed,
            SchedulerName = scheduler.Name,
            SamplerName = SchedulerFactory.A1111Name(scheduler),
            Loras = loras.Select(l => (l.File.Name, l.File.Hash)).ToList(),
            Width = width,
            Height = height,
            Latents = latents,
            ImageFloat = imageFloat,
            Warnings = warnings,
        };
    }

    /// <summary>Refuses a call whose activations cannot fit in <paramref name="available"/> bytes; turns on tiled decoding
    /// (with a warning) when only the whole-image decode does not fit.</summary>
    internal static bool NeedsTiling(MemoryEstimate estimate, long? available, int width, int height, ICollection<string> warnings)
    {
        if (available is not long free || estimate.Peak(tiled: false) <= free)
            return false;
        string G(long b) => MemoryEstimate.Gigabytes(b);
        if (estimate.Peak(tiled: true) > free)
            throw new InsufficientMemoryException($"A {width}x{height} generation needs about {G(estimate.Peak(tiled: true))} for its activations " +
                $"(UNet {G(estimate.UNetBytes)}, tiled VAE decode {G(estimate.TiledDecodeBytes)}) but {G(free)} is available; " +
                "use a smaller size or fewer images, or bfloat16 compute.");
        warnings.Add($"Decoding a {width}x{height} image whole needs about {G(estimate.DecodeBytes)} but {G(free)} is available: decoded in tiles instead (VAE tiling).");
        return true;
    }

    /// <summary>SDXL's conditioning: both encoders' embeddings [(2)B, 77, D₁+D₂], pooled [(2)B, P], time ids [(2)B, 6].</summary>
    Conditioning EncodeXL(GenerationOptions o, List<string> prompts, bool guided, int width, int height, List<string> warnings)
    {
        int perPrompt = o.NumImagesPerPrompt, count = o.PromptCount;
        List<string> Each(Func<int, string> pick) => Enumerable.Range(0, count).SelectMany(i => Enumerable.Repeat(pick(i), perPrompt)).ToList();
        var size = new SizeConditioning(o.OriginalSize ?? (height, width), o.CropsCoordsTopLeft ?? (0, 0), o.TargetSize ?? (height, width));
        var negativeSize = o.NegativeOriginalSize is { } no && o.NegativeTargetSize is { } nt
            ? new SizeConditioning(no, o.NegativeCropsCoordsTopLeft ?? (0, 0), nt) : size;
        if (o.PromptEmbeds is { } given)
        {
            using var scope = NewDisposeScope();
            Tensor Rows(Tensor t) => t.to(DType).to(Device).repeat_interleave(perPrompt, 0);
            var negative = o.NegativePromptEmbeds is { } ne ? (Rows(ne), Rows(o.NegativePooledPromptEmbeds!)) : ((Tensor, Tensor)?)null;
            var conditioning = XLPromptEncoder!.FromEmbeddings(Rows(given), Rows(o.PooledPromptEmbeds!), negative,
                o.HasNegativePrompt ? Each(o.NegativePromptFor) : null, guided, o.ClipSkip, size, negativeSize);
            conditioning.EncoderHiddenStates.MoveToOuterDisposeScope(); // out of this scope: the caller disposes the conditioning
            conditioning.TextEmbeds!.MoveToOuterDisposeScope();
            conditioning.TimeIds!.MoveToOuterDisposeScope();
            return conditioning;
        }
        if (o.PromptSyntax == PromptSyntax.A1111)
            return XLPromptEncoder!.EncodeConditioningA1111(prompts, Each(o.NegativePromptFor), guided, o.ClipSkip, size, negativeSize);
        return XLPromptEncoder!.EncodeConditioning(prompts, Each(o.Prompt2For),
            o.HasNegativePrompt ? Each(o.NegativePromptFor) : null, o.HasNegativePrompt ? Each(o.NegativePrompt2For) : null,
            guided, o.ClipSkip, size, negativeSize, warnings);
    }

    static string PromptText(GenerationOptions o, int i) => o.PromptEmbeds is null ? o.Prompts[i] : (i < o.Prompts.Count ? o.Prompts[i] : "");

    /// <summary>The text conditioning: the prompts encoded (or the caller's embeddings), each repeated per image,
    /// with the unconditional rows first when guided: [(2)B, T, D] in the model dtype.</summary>
    Tensor EncodeConditioning(GenerationOptions o, List<string> prompts, List<string> negatives, bool guided, List<string> warnings)
    {
        if (o.PromptEmbeds is not { } given)
            return guided
                ? PromptEncoder.EncodeGuided(negatives, prompts, o.PromptSyntax, o.ClipSkip, warnings)
                : PromptEncoder.Encode(prompts, o.PromptSyntax, o.ClipSkip, warnings);

        using var scope = NewDisposeScope();
        var cond = given.to(DType).to(Device).repeat_interleave(o.NumImagesPerPrompt, 0);       // [B, T, D]
        if (!guided)
            return cond.MoveToOuterDisposeScope();
        Tensor uncond;
        if (o.NegativePromptEmbeds is { } negative)
            uncond = negative.to(DType).to(Device).repeat_interleave(o.NumImagesPerPrompt, 0);
        else
        {
            var empty = PromptEncoder.Encode(negatives, PromptSyntax.Plain, o.ClipSkip);          // [B, 77, D]
            if (cond.shape[1] % empty.shape[1] != 0)
                throw new ArgumentException($"Prompt embeddings of {cond.shape[1]} tokens need negative prompt embeddings of the same shape (the empty prompt is {empty.shape[1]}).");
            uncond = empty.repeat(1, cond.shape[1] / empty.shape[1], 1);
        }
        return cat([uncond, cond], 0).MoveToOuterDisposeScope();
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
        TextEncoder2?.Dispose();
        TextEncoder.Dispose();
        Unet.Dispose();
        Vae.Dispose();
    }
}
