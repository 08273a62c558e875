using System.Diagnostics;
using SharpDiffusion.Adapters;
using SharpDiffusion.Conditioning;
using SharpDiffusion.Families;
using SharpDiffusion.Families.StableDiffusion;
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
/// A loaded model and the order of the steps of every task diffusers has a pipeline for: text-to-image, img2img and
/// inpainting. <see cref="Generate"/> encodes the prompts (the family's <see cref="ITextConditioner"/>), lets the task
/// (<see cref="TextToImage"/>, <see cref="ImageToImage"/>, <see cref="Inpainting"/>) make its initial latents, timesteps
/// and step hook, runs the shared <see cref="DenoisingLoop"/> with the family's <see cref="IDenoiser"/>, decodes
/// (<see cref="VaeCodec"/>) and converts to images. What differs between families lives in <see cref="ModelComponents"/>.
/// One generation at a time per pipeline: a call's LoRAs are merged into its weights until the call returns
/// (<see cref="LoraMerger"/>), and <see cref="LoadTextualInversion"/> extends its tokenizers and text encoders.
/// </summary>
public sealed partial class StableDiffusionPipeline : IDisposable
{
    /// <summary>The model as its family assembled it.</summary>
    public ModelComponents Components { get; }
    public ModelFamily Family => Components.Family;
    public ITextConditioner Conditioner => Components.Conditioner;
    public IDenoiser Denoiser => Components.Denoiser;
    public VaeCodec VaeCodec => Components.Vae;
    public LatentFormat LatentFormat => Components.LatentFormat;
    /// <summary>The model's scheduler_config.json; every scheduler is built from it (diffusers' from_config).</summary>
    public SchedulerConfig SchedulerConfig => Components.SchedulerConfig;
    /// <summary>A short name for the model (its folder name), written into image metadata.</summary>
    public string ModelName { get; }
    public Device Device { get; }
    public ScalarType DType { get; }

    public StableDiffusionPipeline(ModelComponents components, string modelName, LoadOptions options)
    {
        Components = components;
        ModelName = modelName;
        Device = new Device(options.Device);
        DType = options.DType;
    }

    /// <summary>AUTOMATIC1111's "Model hash" (first 10 hex digits of the file's SHA-256) of a single-file checkpoint,
    /// computed on first use; null for a diffusers folder.</summary>
    public string? ModelHash => _modelHash?.Value;
    Lazy<string>? _modelHash;

    /// <summary>What loading had to assume (e.g. an SD 2.x file's prediction type).</summary>
    public IReadOnlyList<string> LoadWarnings => Components.LoadWarnings;

    /// <summary>A model folder or a single-file checkpoint, whichever <paramref name="path"/> is: the one place that choice is made.
    /// <paramref name="singleFile"/> options on a folder are refused.</summary>
    public static StableDiffusionPipeline Load(string path, LoadOptions? options = null, SingleFileOptions? singleFile = null)
    {
        if (File.Exists(path))
            return FromSingleFile(path, options, singleFile);
        if (singleFile is { OriginalConfig: not null } or { TextEncoderConfig: not null } or { TextEncoder2Config: not null } or { ImageSize: not null }
            or { DiffusersConfig: not null } or { TextEncoders.Count: > 0 })
            throw new ArgumentException($"{path} is a model folder: the original config, text encoder configs and files and image size apply to a single-file checkpoint.");
        return FromPretrained(path, options);
    }

    /// <summary>Loads a diffusers folder; its family comes from model_index.json (<see cref="ModelFamily.Detect(DiffusersFolder)"/>).</summary>
    public static StableDiffusionPipeline FromPretrained(string modelDir, LoadOptions? options = null)
    {
        options ??= new LoadOptions();
        var folder = DiffusersFolder.Open(modelDir);
        var family = ModelFamily.Detect(folder);
        if (options.TransformerFile is not null && family is not Families.Flux.FluxFamily)
            throw new ArgumentException($"--transformer {options.TransformerFile}: replacing the transformer is for Flux models; {modelDir} is {family}.");
        return new StableDiffusionPipeline(family.Load(folder, options), folder.Name, options);
    }

    /// <summary>Loads a single-file checkpoint in the original LDM/CompVis layout (SD 1.x/2.x/XL, inpainting too), as
    /// AUTOMATIC1111 and ComfyUI use them: see <see cref="SingleFileLoader"/>. The architecture comes from the tensors,
    /// with <paramref name="singleFile"/>'s LDM .yaml for what they cannot tell; what the file lacks is the project's
    /// (the CLIP tokenizer files, SD's default scheduler). A Stability SD3/SD3.5 file (MMDiT keys) loads through
    /// <see cref="Sd3SingleFileLoader"/>, with <paramref name="singleFile"/>'s text encoder files.</summary>
    public static StableDiffusionPipeline FromSingleFile(string path, LoadOptions? options = null, SingleFileOptions? singleFile = null)
    {
        options ??= new LoadOptions();
        if (options.TransformerFile is not null)
            throw new ArgumentException($"--transformer {options.TransformerFile} replaces a diffusers folder's transformer; {path} is a single-file checkpoint.");
        bool sd3, flux;
        using (var file = TensorFiles.Open(path)) (sd3, flux) = (Sd3Checkpoint.IsSd3(file), FluxComponentFiles.IsFluxTransformer(file)); // SD3/SD3.5 (Stability layout), Flux (BFL) or LDM
        var components = flux ? Families.Flux.FluxFamily.FromComponentFiles(FluxComponentFiles.Inspect(path, singleFile ?? new SingleFileOptions()), options)
            : sd3 ? Families.StableDiffusion3.StableDiffusion3Family.FromSingleFile(Sd3SingleFileLoader.Load(path, options, singleFile), options)
            : StableDiffusionFamily.FromSingleFile(SingleFileLoader.Load(path, options, singleFile), options);
        return new StableDiffusionPipeline(components, Path.GetFileNameWithoutExtension(path), options)
        {
            _modelHash = new Lazy<string>(() => Loading.ModelHash.Compute(path)),
        };
    }

    /// <summary>Sizes must be multiples of this: a whole latent token, at least 8.</summary>
    public int SizeMultiple => LatentFormat.SizeMultiple;

    /// <summary>diffusers' default size: the denoiser's sample_size × the VAE's factor.</summary>
    public int DefaultSize => Denoiser.DefaultSampleSize * LatentFormat.SpatialFactor;

    /// <summary>The scheduler a call uses: the named one, else the model's own, both from the model's config; an
    /// override the scheduler does not have is refused (<see cref="SchedulerFactory.Create(string?, SchedulerConfig, IReadOnlyDictionary{string, object?}?)"/>).</summary>
    public IScheduler CreateScheduler(string? name, IReadOnlyDictionary<string, object?>? overrides = null) =>
        SchedulerFactory.Create(name, SchedulerConfig, overrides);

    /// <summary>Validates options before any work (<see cref="GenerationOptions.Validate"/>, then what the text conditioner
    /// and the denoiser accept) and returns the size the call works at.</summary>
    public (int Width, int Height) Validate(GenerationOptions o)
    {
        o.Validate();
        int multiple = SizeMultiple;
        var (width, height) = o.ImageLatents is { } latents
            ? ((int)latents.shape[3] * LatentFormat.SpatialFactor, (int)latents.shape[2] * LatentFormat.SpatialFactor)
            : o.Image is { } image
            ? ImageInputs.WorkingSize(image, o.Width, o.Height, multiple)
            : (o.Width ?? DefaultSize, o.Height ?? DefaultSize);
        if (o.ImageLatents is { } given && (given.dim() != 4 || given.shape[1] != LatentFormat.Channels))
            throw new ArgumentException($"Image latents must be [B, {LatentFormat.Channels}, h, w] for this model; got [{string.Join(", ", given.shape)}].");
        if (width % multiple != 0 || height % multiple != 0)
            throw new ArgumentException($"Width and height must be positive multiples of {multiple} for this model; got {width}x{height}. Try {Round(width, multiple)}x{Round(height, multiple)}.");
        Conditioner.Validate(o);
        Denoiser.Validate(o);
        return (width, height);
    }

    static int Round(int value, int multiple) => Math.Max(multiple, (int)Math.Round(value / (double)multiple) * multiple);

    /// <summary>Image [1, 3, H, W] in [−1, 1] → latents of one VAE posterior sample, [1, C, h, w] float32 (<see cref="VaeCodec.Encode"/>).</summary>
    public Tensor EncodeImage(Tensor image, Generator generator) => VaeCodec.Encode(image, generator);

    /// <summary>Latents → image in [0, 1], [B, H, W, 3] float32 on the CPU (<see cref="VaeCodec.Decode"/>).</summary>
    public Tensor DecodeLatents(Tensor latents, bool tiled = false) => VaeCodec.Decode(latents, tiled);

    /// <summary>diffusers' load_textual_inversion: the embedding's tokens added to every tokenizer, its rows to every text
    /// encoder, for every later call. Returns the tokens. Not thread-safe: load before generating.</summary>
    public IReadOnlyList<string> LoadTextualInversion(string path, string? token = null) => Conditioner.LoadTextualInversion(path, token);

    /// <summary>Every embedding file of <paramref name="directory"/> (see <see cref="TextualInversion.LoadDirectory"/>).</summary>
    public (IReadOnlyList<string> Tokens, IReadOnlyList<string> Skipped) LoadTextualInversionDirectory(string directory) =>
        TextualInversion.LoadDirectory(Conditioner, directory);

    /// <summary>Runs the task the options ask for: encode → one pass of the loop → decode. <paramref name="onStepEnd"/> sees
    /// (step index, latents after the step); <paramref name="onDenoised"/> (step index, the clean latents x̂₀ the model
    /// predicts there), for previews (<see cref="LatentPreview"/>).</summary>
    public GenerationResult Generate(GenerationOptions options, IProgress<GenerationProgress>? progress = null,
        Action<int, Tensor>? onStepEnd = null, CancellationToken cancellation = default, Action<int, Tensor>? onDenoised = null)
    {
        if (options.Hires is not null)
            return HiresFix.Run(this, options, progress, onStepEnd, cancellation, onDenoised);
        if (options.Refiner is not null)
            return RefinerPass.Run(this, options, progress, onStepEnd, cancellation, onDenoised);
        var (width, height) = Validate(options);
        var scheduler = CreateScheduler(options.Scheduler, options.SchedulerOptions);
        using var schedulerHistory = scheduler as IDisposable; // multistep schedulers keep past model outputs
        long seed = options.Seed is >= 0 and long given ? given : Random.Shared.NextInt64(0, uint.MaxValue);
        long variationSeed = options.VariationSeed is >= 0 and long v ? v : Random.Shared.NextInt64(0, uint.MaxValue);
        var variation = SeedVariation.For(options, seed, variationSeed);
        var clock = Stopwatch.StartNew();
        var warnings = options.Advisories().ToList();
        using var inference = inference_mode();

        var prompts = PerImage(options, i => PromptText(options, i));
        var negatives = PerImage(options, options.NegativePromptFor);
        // A1111 cuts <lora:…> out before parsing emphasis; the tags' files are loaded for this call.
        using var tagged = options.PromptSyntax == PromptSyntax.A1111 ? LoraPromptTags.Resolve(prompts, options.LoraDirectory) : null;
        warnings.AddRange(tagged?.Warnings ?? []);
        var loras = options.Loras.Concat(tagged?.Loras ?? []).ToList();
        // With LowMemory each component's weights are read just before it runs and freed after (the denoiser's early when
        // LoRAs are merged into it); a LoRA merged into weights that leave is not restored: they are read again next time.
        // A LoRA with text-encoder layers is merged into encoders that must be in memory when it is (SD3 and Flux otherwise
        // read theirs one at a time, later, and the merge would land on weights that are not there).
        using var textEncoders = Components.UseTextEncoders(all: loras.Any(l => l.File.Layers.Any(x => x.Target != LoraTarget.Unet)));
        using var denoiserForLoras = loras.Count > 0 ? Denoiser.Weights.Use() : null;
        using var merged = Components.MergeLoras(loras); // until the call ends
        var guidance = Denoiser.Guidance(options);
        bool tiled = options.VaeTiling || DecodeNeedsTiling(prompts.Count, guidance.Enabled, width, height, warnings);
        if (tiled && options.Tiling)
            throw new ArgumentException($"Tiling (a seamless picture) needs the VAE to decode all of {width}x{height} at once, which does not fit in memory; make it smaller.");
        using var circular = options.Tiling ? Models.CircularPadding.Use(Denoiser.Weights.Module, VaeCodec.Weights.Module) : null;
        int steps = options.DenoisingSteps;

        progress?.Report(new GenerationProgress(GenerationStage.Encoding, 0, steps, clock.Elapsed));
        var batch = new PromptBatch(options, tagged?.Prompts.ToList() ?? prompts, negatives, guidance.Enabled, width, height);
        using var conditioning = Conditioner.Encode(batch, warnings); // [(2)B, T, D], uncond first
        textEncoders.Dispose();
        using var generator = new Generator((ulong)seed);
        Denoiser.SetTimesteps(scheduler, options.NumInferenceSteps, LatentFormat.Shape(prompts.Count, width, height));
        using var inputs = options.Image is null ? null : ImageInputs.Prepare(options, width, height, warnings);
        using var start = options.Task switch
        {
            GenerationTask.TextToImage => TextToImage.Prepare(this, options, scheduler, prompts.Count, width, height, generator, variation),
            GenerationTask.ImageToImage when options is { ImageLatents: { } noisy, DenoisingStart: double from } =>
                DenoisingRange.Resume(this, noisy, from, scheduler, prompts.Count),
            GenerationTask.ImageToImage when options.ImageLatents is { } clean => ImageToImage.PrepareFromLatents(this, clean, options.EffectiveStrength,
                scheduler, options.NumInferenceSteps, prompts.Count, generator, variation),
            GenerationTask.ImageToImage => ImageToImage.Prepare(this, inputs!.Image, options.EffectiveStrength, scheduler,
                options.NumInferenceSteps, prompts.Count, generator, variation),
            _ => Inpainting.Prepare(this, inputs!.Image, inputs.Mask!, options.EffectiveStrength, scheduler,
                options.NumInferenceSteps, prompts.Count, guidance.Enabled, generator, variation),
        };

        var timesteps = DenoisingRange.Until(start.Timesteps, scheduler, options.DenoisingEnd);
        var plan = new DenoisingPlan(scheduler, timesteps, conditioning, guidance, generator, start.Hook)
        {
            OnDenoised = onDenoised,
            CleanEstimate = onDenoised is null ? null : Denoiser.CleanEstimate(scheduler),
        };
        var latents = Denoise(start.Latents, plan, options, denoiserForLoras, (i, l) =>
        {
            onStepEnd?.Invoke(i, l);
            progress?.Report(new GenerationProgress(GenerationStage.Denoising, i + 1, timesteps.Count, clock.Elapsed));
        }, cancellation);

        Diagnostics.NativeHeap.Trim(); // the denoiser's freed activations, before the VAE's large ones
        progress?.Report(new GenerationProgress(GenerationStage.Decoding, steps, steps, clock.Elapsed));
        var imageFloat = options.LatentsOnly ? empty([0, height, width, 3]) : DecodeLatents(latents, tiled);
        if (options.PasteOriginal && inputs?.SoftMask is not null)
        {
            var pasted = inputs.PasteOriginal(imageFloat);
            imageFloat.Dispose();
            imageFloat = pasted;
        }
        var images = options.LatentsOnly ? [] : ImageTensors.ToImages(imageFloat, prompts, negatives);
        progress?.Report(new GenerationProgress(GenerationStage.Done, steps, steps, clock.Elapsed));
        return new GenerationResult
        {
            Images = images,
            Seed = seed,
            VariationSeed = options.VariationStrength > 0 ? variationSeed : null,
            SchedulerName = scheduler.Name,
            SamplerName = SchedulerFactory.A1111Name(scheduler),
            ScheduleType = SchedulerFactory.A1111ScheduleLabel(scheduler),
            InfoGuidance = Denoiser.InfoGuidance(options),
            Loras = loras.Select(l => (l.File.Name, l.File.Hash)).ToList(),
            Width = width,
            Height = height,
            Latents = latents,
            ImageFloat = imageFloat,
            Warnings = warnings,
        };
    }

    /// <summary>One pass of the shared loop over <paramref name="latents"/> (which it takes over): the denoiser's weights in
    /// memory (<paramref name="earlierUse"/>, held for LoRA merging, let go once they are) and one run of its per-call state.</summary>
    Tensor Denoise(Tensor latents, DenoisingPlan plan, GenerationOptions options, IDisposable? earlierUse, Action<int, Tensor> onStepEnd,
        CancellationToken cancellation)
    {
        using var use = Denoiser.Weights.Use();
        earlierUse?.Dispose();
        using var run = Denoiser.Start(options);
        return new DenoisingLoop(Denoiser, run).Run(latents, plan, onStepEnd, cancellation);
    }

    /// <summary>Whether the decode must be tiled to fit (refusing a call that does not fit at all). With LowMemory the
    /// denoiser's weights come in after this check: what they will take is not available to activations.</summary>
    bool DecodeNeedsTiling(int batch, bool guided, int width, int height, List<string> warnings)
    {
        long? available = MemoryEstimate.AvailableBytes() - (Denoiser.Weights.Resident ? 0 : Denoiser.Weights.Bytes);
        return MemoryEstimate.NeedsTiling(MemoryEstimate.For(this, batch, guided, width, height), available, width, height, warnings);
    }

    /// <summary>One value per image: <paramref name="pick"/> of each prompt index, repeated per image (prompt-major).</summary>
    static List<string> PerImage(GenerationOptions o, Func<int, string> pick) =>
        Enumerable.Range(0, o.PromptCount).SelectMany(i => Enumerable.Repeat(pick(i), o.NumImagesPerPrompt)).ToList();

    static string PromptText(GenerationOptions o, int i) => o.PromptEmbeds is null ? o.Prompts[i] : (i < o.Prompts.Count ? o.Prompts[i] : "");

    public void Dispose() => Components.Dispose();
}
