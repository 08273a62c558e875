using System.Globalization;
using SharpDiffusion.Adapters;
using SharpDiffusion.Imaging;
using SharpDiffusion.Schedulers;
using static TorchSharp.torch;

namespace SharpDiffusion.Pipelines;

/// <summary>
/// Everything a user sets for one call, named as diffusers names the pipelines' arguments. Which task runs
/// follows from the inputs: no <see cref="Image"/> = text-to-image; an image = img2img; an image and a
/// <see cref="MaskImage"/> = inpainting.
/// </summary>
public sealed record GenerationOptions
{
    /// <summary>One image batch per prompt (times <see cref="NumImagesPerPrompt"/>). May be empty when
    /// <see cref="PromptEmbeds"/> is given.</summary>
    public IReadOnlyList<string> Prompts { get; init; } = [];

    /// <summary>None: "" for every prompt. One: applies to every prompt. As many as prompts: paired in order.</summary>
    public IReadOnlyList<string>? NegativePrompts { get; init; }

    /// <summary>SDXL's <c>prompt_2</c> for the second text encoder: none = the prompts themselves; one = for every prompt;
    /// as many as prompts = paired in order.</summary>
    public IReadOnlyList<string>? Prompts2 { get; init; }

    /// <summary>SDXL's <c>negative_prompt_2</c>: none = the negative prompts themselves; otherwise as <see cref="Prompts2"/>.</summary>
    public IReadOnlyList<string>? NegativePrompts2 { get; init; }

    /// <summary>SD3's <c>prompt_3</c> for the T5 encoder: none = the prompts themselves; otherwise as <see cref="Prompts2"/>.</summary>
    public IReadOnlyList<string>? Prompts3 { get; init; }

    /// <summary>SD3's <c>negative_prompt_3</c>: none = the negative prompts themselves; otherwise as <see cref="Prompts2"/>.</summary>
    public IReadOnlyList<string>? NegativePrompts3 { get; init; }

    /// <summary>T5 tokens (diffusers' <c>max_sequence_length</c>); null = the model's default (SD3: 256). At most 512.</summary>
    public int? MaxSequenceLength { get; init; }

    /// <summary>SDXL micro-conditioning (diffusers' original_size, crops_coords_top_left, target_size and their negative_
    /// counterparts), as (height, width) and (top, left); null = the working size, (0, 0), the working size. The negative
    /// ones apply only when both negative sizes are given (else the positive ones are used), as diffusers.</summary>
    public (int Height, int Width)? OriginalSize { get; init; }
    public (int Top, int Left)? CropsCoordsTopLeft { get; init; }
    public (int Height, int Width)? TargetSize { get; init; }
    public (int Height, int Width)? NegativeOriginalSize { get; init; }
    public (int Top, int Left)? NegativeCropsCoordsTopLeft { get; init; }
    public (int Height, int Width)? NegativeTargetSize { get; init; }

    /// <summary>diffusers' <c>prompt_embeds</c>: text embeddings [B, T, D] used instead of encoding <see cref="Prompts"/>
    /// (each row is one prompt; <see cref="NumImagesPerPrompt"/> repeats it). The caller keeps ownership.</summary>
    public Tensor? PromptEmbeds { get; init; }

    /// <summary>diffusers' <c>negative_prompt_embeds</c> [B, T, D]; with <see cref="PromptEmbeds"/> and guidance,
    /// null means the encoded "" (as diffusers).</summary>
    public Tensor? NegativePromptEmbeds { get; init; }

    /// <summary>SDXL: diffusers' <c>pooled_prompt_embeds</c> [B, P] (the second text encoder's projected output), needed
    /// with <see cref="PromptEmbeds"/>. The caller keeps ownership.</summary>
    public Tensor? PooledPromptEmbeds { get; init; }

    /// <summary>SDXL: diffusers' <c>negative_pooled_prompt_embeds</c> [B, P], needed with <see cref="NegativePromptEmbeds"/>.</summary>
    public Tensor? NegativePooledPromptEmbeds { get; init; }

    /// <summary>diffusers' <c>latents</c> for text-to-image: the initial noise [B·n, 4, h, w] (before init_noise_sigma)
    /// instead of drawing it. The caller keeps ownership.</summary>
    public Tensor? Latents { get; init; }

    /// <summary>img2img from latents instead of a picture [B or 1, C, h, w] (the loop's scaled latents), as diffusers'
    /// img2img pipeline takes a latent-channel image: used as they are, no VAE encode (the hires fix's second pass). The
    /// size follows them. The caller keeps ownership.</summary>
    public Tensor? ImageLatents { get; init; }

    /// <summary>diffusers' output_type="latent": the result holds the final latents and no decoded pictures.</summary>
    public bool LatentsOnly { get; init; }

    /// <summary>AUTOMATIC1111's hires fix for text-to-image (<see cref="HiresFixOptions"/>); null = one pass.</summary>
    public HiresFixOptions? Hires { get; init; }

    /// <summary>The SDXL refiner as a second expert after the base (<see cref="RefinerOptions"/>); null = none.</summary>
    public RefinerOptions? Refiner { get; init; }

    /// <summary>diffusers' denoising_end: stop at this fraction of the schedule and return the noisy latents (the base's
    /// pass before a refiner); denoising_start: img2img from <see cref="ImageLatents"/> taken as they are at this fraction
    /// (the refiner's pass). See <see cref="DenoisingRange"/>.</summary>
    public double? DenoisingEnd { get; init; }
    public double? DenoisingStart { get; init; }

    /// <summary>SDXL refiners (requires_aesthetics_score): the aesthetic score their time ids carry, and the negative rows'.</summary>
    public double AestheticScore { get; init; } = 6.0;
    public double NegativeAestheticScore { get; init; } = 2.5;

    /// <summary>Pixels; default: text-to-image the UNet's sample_size × the VAE's scale factor (512 for SD 1.5);
    /// img2img/inpainting the image's own size, rounded down to a multiple of 8. With an image, a given size
    /// resizes the image first (one side given: the other keeps the aspect ratio).</summary>
    public int? Width { get; init; }
    public int? Height { get; init; }

    public int NumInferenceSteps { get; init; } = 50;

    /// <summary>Classifier-free guidance; ≤ 1 skips the unconditional pass, as diffusers does.</summary>
    public double GuidanceScale { get; init; } = 7.5;

    /// <summary>diffusers' guidance_rescale (0 = off); SD 2.x v-prediction models use ~0.7.</summary>
    public double GuidanceRescale { get; init; }

    /// <summary>DeepCache: a full UNet pass every N steps, the shallow path on cached deep features between (1 = off).
    /// Faster (about N-fold fewer deep computations), at some cost in fidelity; off by default.</summary>
    public int DeepCacheInterval { get; init; } = 1;
    public const int MaxDeepCacheInterval = 20;

    /// <summary>Seed of the CPU generator all noise is drawn from; null or -1 (AUTOMATIC1111's "random") picks a random
    /// one (reported in the result).</summary>
    public long? Seed { get; init; }

    /// <summary>AUTOMATIC1111's variation seed (subseed): the noise moves towards this seed's by
    /// <see cref="VariationStrength"/> (see <see cref="SeedVariation"/>); null or −1 picks a random one.</summary>
    public long? VariationSeed { get; init; }

    /// <summary>0 (the seed's picture) to 1 (the variation seed's picture); A1111's subseed_strength.</summary>
    public double VariationStrength { get; init; }

    /// <summary>A1111's "resize seed from": the seed's noise as a picture of this size would draw it, pasted centred, so the
    /// composition of that picture carries over to another size (0 = off; both or neither).</summary>
    public int SeedResizeFromWidth { get; init; }
    public int SeedResizeFromHeight { get; init; }

    public int NumImagesPerPrompt { get; init; } = 1;

    /// <summary>Scheduler name (diffusers class, short or AUTOMATIC1111 name); null = the model's own.</summary>
    public string? Scheduler { get; init; }

    /// <summary>Scheduler config keys to override, as diffusers' <c>from_config(config, key=value)</c>
    /// (e.g. timestep_spacing, use_karras_sigmas, prediction_type, steps_offset).</summary>
    public IReadOnlyDictionary<string, object?>? SchedulerOptions
    {
        // Eta reaches the scheduler as its config key "eta" (only DDIM and TCD read it: others refuse it by name).
        get => Eta is double eta ? new Dictionary<string, object?>(_schedulerOptions ?? new Dictionary<string, object?>()) { [SchedulerFactory.EtaKey] = eta } : _schedulerOptions;
        init => _schedulerOptions = value;
    }
    readonly IReadOnlyDictionary<string, object?>? _schedulerOptions;

    /// <summary>DDIM's η (0 = deterministic, diffusers' default) or TCD's γ (default 0.3); null = the scheduler's default.
    /// A scheduler without one refuses it.</summary>
    public double? Eta { get; init; }

    /// <summary>Decode the latents in overlapping tiles (diffusers' enable_vae_tiling): flat memory for large images
    /// (1024×1024 and up) at the price of tiny blending differences.</summary>
    public bool VaeTiling { get; init; }

    /// <summary>AUTOMATIC1111's "Tiling": a seamless texture, every UNet and VAE conv padding circularly so the left edge
    /// continues into the right and the top into the bottom (<see cref="Models.CircularPadding"/>).</summary>
    public bool Tiling { get; init; }

    /// <summary>How prompt text is read; <see cref="PromptSyntax.Plain"/> (diffusers) by default.</summary>
    public PromptSyntax PromptSyntax { get; init; } = PromptSyntax.Plain;

    /// <summary>AUTOMATIC1111's CLIP skip: 1 = the text encoder's last layer; n = the output of the n-th layer from
    /// the end, through the final layer norm.</summary>
    public int ClipSkip { get; init; } = 1;

    /// <summary>LoRAs merged into the weights for this call only and taken out afterwards (the base weights come back
    /// bit-identical), each at its own scale. The caller keeps ownership of the files and may reuse them.</summary>
    public IReadOnlyList<LoraWeight> Loras { get; init; } = [];

    /// <summary>With <see cref="PromptSyntax.A1111"/>: where <c>&lt;lora:name:scale&gt;</c> tags of the prompts are looked up
    /// (NAME.safetensors); the tags are removed from the text before it is parsed, as AUTOMATIC1111 does.</summary>
    public string? LoraDirectory { get; init; }

    /// <summary>ControlNets steering this call (each with its own image, scale, start/end, guess mode); residuals summed.</summary>
    public IReadOnlyList<ControlNetUnit> ControlNets { get; init; } = [];

    /// <summary>img2img / inpainting: the picture to start from.</summary>
    public RgbImage? Image { get; init; }

    /// <summary>Inpainting: white (≥ 50% grey) = repaint, black = keep. Another size than the image is resized to it.</summary>
    public RgbImage? MaskImage { get; init; }

    /// <summary>How much of the schedule runs on the image: 1 = all of it (the image only seeds the noise), 0 = none.
    /// Null: 0.75 for img2img (AUTOMATIC1111's default), 1.0 for inpainting (diffusers').</summary>
    public double? Strength { get; init; }

    /// <summary>Inpainting: Gaussian blur of the mask in pixels (AUTOMATIC1111's mask_blur; 0 = diffusers).</summary>
    public int MaskBlur { get; init; }

    /// <summary>Inpainting: repaint the black part instead of the white (AUTOMATIC1111's inpainting_mask_invert).</summary>
    public bool InvertMask { get; init; }

    /// <summary>Inpainting: paste the original pixels back outside the (blurred) mask, so what was not to be repainted
    /// stays exactly as it was (AUTOMATIC1111 always does; diffusers does not: off by default).</summary>
    public bool PasteOriginal { get; init; }

    public const double DefaultImg2ImgStrength = 0.75;
    public const double DefaultInpaintStrength = 1.0;
    public const int MaxSide = 8192;
    public const int MaxBatch = 128;
    public const int MaxMaskBlur = 256;

    public GenerationTask Task => ImageLatents is not null ? GenerationTask.ImageToImage
        : Image is null ? GenerationTask.TextToImage
        : MaskImage is null ? GenerationTask.ImageToImage : GenerationTask.Inpainting;

    /// <summary>The strength this call uses (the task's default when unset); 1 for text-to-image.</summary>
    public double EffectiveStrength => Task switch
    {
        GenerationTask.TextToImage => 1.0,
        GenerationTask.ImageToImage => Strength ?? DefaultImg2ImgStrength,
        _ => Strength ?? DefaultInpaintStrength,
    };

    /// <summary>Prompts in the batch (before <see cref="NumImagesPerPrompt"/>).</summary>
    public int PromptCount => PromptEmbeds is { } e ? (int)e.shape[0] : Prompts.Count;

    /// <summary>The negative prompt that pairs with prompt <paramref name="i"/>.</summary>
    public string NegativePromptFor(int i) => NegativePrompts switch
    {
        null or { Count: 0 } => "",
        { Count: 1 } one => one[0],
        var list => list[i],
    };

    /// <summary>Whether any negative prompt was given (SDXL's force_zeros_for_empty_prompt zeroes the negative embeddings when none was).</summary>
    public bool HasNegativePrompt => NegativePrompts is { Count: > 0 };

    /// <summary>prompt_2 for prompt <paramref name="i"/>.</summary>
    public string Prompt2For(int i) => Pick(Prompts2, i) ?? Prompts[i];

    /// <summary>negative_prompt_2 for prompt <paramref name="i"/>.</summary>
    public string NegativePrompt2For(int i) => Pick(NegativePrompts2, i) ?? NegativePromptFor(i);

    /// <summary>prompt_3 for prompt <paramref name="i"/>.</summary>
    public string Prompt3For(int i) => Pick(Prompts3, i) ?? Prompts[i];

    /// <summary>negative_prompt_3 for prompt <paramref name="i"/>.</summary>
    public string NegativePrompt3For(int i) => Pick(NegativePrompts3, i) ?? NegativePromptFor(i);

    static string? Pick(IReadOnlyList<string>? list, int i) => list switch
    {
        null or { Count: 0 } => null,
        { Count: 1 } one => one[0],
        _ => list[i],
    };

    /// <summary>Values that are allowed but almost surely not meant, as warnings.</summary>
    public IEnumerable<string> Advisories()
    {
        if (Math.Abs(GuidanceScale) > 50)
            yield return $"A guidance scale of {GuidanceScale.ToString(CultureInfo.InvariantCulture)} is far outside the usual 1-20; expect a saturated or black image.";
    }

    /// <summary>UNet steps that run: img2img and inpainting cut the schedule to int(steps × strength), as diffusers.</summary>
    public int DenoisingSteps => Task == GenerationTask.TextToImage
        ? NumInferenceSteps
        : Math.Min((int)(NumInferenceSteps * EffectiveStrength), NumInferenceSteps);

    /// <summary>Checks everything that needs no model, with one-line messages that name the value and the fix.</summary>
    public void Validate()
    {
        var inv = CultureInfo.InvariantCulture;
        if (PromptEmbeds is null && Prompts.Count == 0)
            throw new ArgumentException("At least one prompt is needed (or prompt embeddings).");
        if (PromptEmbeds is { } pe && pe.dim() != 3)
            throw new ArgumentException($"Prompt embeddings must be [batch, tokens, dim]; got [{string.Join(", ", pe.shape)}].");
        if (NegativePromptEmbeds is { } ne && (PromptEmbeds is null || !ne.shape.SequenceEqual(PromptEmbeds.shape)))
            throw new ArgumentException("Negative prompt embeddings need prompt embeddings of the same shape.");
        if (PooledPromptEmbeds is { } pp && (PromptEmbeds is null || pp.dim() != 2 || pp.shape[0] != PromptEmbeds.shape[0]))
            throw new ArgumentException("Pooled prompt embeddings must be [batch, dim], one row per row of the prompt embeddings (which they need).");
        if (NegativePooledPromptEmbeds is { } np && (NegativePromptEmbeds is null || PooledPromptEmbeds is null || !np.shape.SequenceEqual(PooledPromptEmbeds.shape)))
            throw new ArgumentException("Negative pooled prompt embeddings need negative prompt embeddings and pooled prompt embeddings of the same shape.");
        if (NegativePromptEmbeds is not null && PooledPromptEmbeds is not null && NegativePooledPromptEmbeds is null)
            throw new ArgumentException("With negative prompt embeddings, SDXL also needs their pooled embeddings (negative_pooled_prompt_embeds).");
        if (NegativePrompts is { Count: > 1 } n && n.Count != PromptCount)
            throw new ArgumentException($"Give one negative prompt for all prompts, or one per prompt ({PromptCount}); got {n.Count}.");
        foreach (var (name, list) in new[] { ("prompt_2", Prompts2), ("negative prompt_2", NegativePrompts2), ("prompt_3", Prompts3), ("negative prompt_3", NegativePrompts3) })
            if (list is { Count: > 1 } l && l.Count != PromptCount)
                throw new ArgumentException($"Give one {name} for all prompts, or one per prompt ({PromptCount}); got {l.Count}.");
        if (Eta is double eta && !(eta >= 0 && eta <= 100))
            throw new ArgumentException($"eta must be a number from 0 (deterministic) up; got {eta}.");
        if (MaxSequenceLength is int tokens && tokens is < 1 or > 512)
            throw new ArgumentException($"max_sequence_length must be 1 to 512 T5 tokens; got {tokens}.");
        foreach (var (name, size) in new[] { ("original_size", OriginalSize), ("target_size", TargetSize), ("negative_original_size", NegativeOriginalSize), ("negative_target_size", NegativeTargetSize) })
            if (size is var (h, w) && (h <= 0 || w <= 0 || h > 65536 || w > 65536))
                throw new ArgumentException($"{name} must be positive (height, width) up to 65536; got ({h}, {w}).");
        foreach (var (name, crop) in new[] { ("crops_coords_top_left", CropsCoordsTopLeft), ("negative_crops_coords_top_left", NegativeCropsCoordsTopLeft) })
            if (crop is var (top, left) && (top < 0 || left < 0 || top > 65536 || left > 65536))
                throw new ArgumentException($"{name} must be (top, left) from 0 to 65536; got ({top}, {left}).");
        foreach (var (name, value) in new[] { ("width", Width), ("height", Height) })
            if (value is int v && (v <= 0 || v % 8 != 0 || v > MaxSide))
                throw new ArgumentException($"The {name} must be a positive multiple of 8 up to {MaxSide}; got {v}. Try {Math.Clamp((int)Math.Round(v / 8.0) * 8, 8, MaxSide)}.");
        if (NumInferenceSteps < 1)
            throw new ArgumentException($"The number of steps must be at least 1; got {NumInferenceSteps}.");
        if (NumImagesPerPrompt < 1)
            throw new ArgumentException($"Images per prompt must be at least 1; got {NumImagesPerPrompt}.");
        if ((long)PromptCount * NumImagesPerPrompt > MaxBatch)
            throw new ArgumentException($"{PromptCount} prompts × {NumImagesPerPrompt} images is a batch of {(long)PromptCount * NumImagesPerPrompt}, more than {MaxBatch}; make several calls.");
        if (!double.IsFinite(GuidanceScale))
            throw new ArgumentException("The guidance scale must be a finite number.");
        if (!double.IsFinite(GuidanceRescale) || GuidanceRescale < 0 || GuidanceRescale > 1)
            throw new ArgumentException($"Guidance rescale must be between 0 and 1; got {GuidanceRescale.ToString(inv)}.");
        if (Scheduler is { } s && !SchedulerFactory.ValidNames.Contains(s.Trim(), StringComparer.OrdinalIgnoreCase))
            throw new ArgumentException($"Unknown scheduler '{s}'. Valid names: {string.Join(", ", SchedulerFactory.ValidNames.Distinct(StringComparer.OrdinalIgnoreCase))}.");
        if (Seed is < -1)
            throw new ArgumentException($"The seed must be -1 (random) or a number from 0; got {Seed}.");
        if (VariationSeed is < -1)
            throw new ArgumentException($"The variation seed must be -1 (random) or a number from 0; got {VariationSeed}.");
        if (!double.IsFinite(VariationStrength) || VariationStrength < 0 || VariationStrength > 1)
            throw new ArgumentException($"The variation strength must be between 0 and 1; got {VariationStrength.ToString(inv)}.");
        foreach (var (name, value) in new[] { ("width", SeedResizeFromWidth), ("height", SeedResizeFromHeight) })
            if (value < 0 || value > MaxSide)
                throw new ArgumentException($"The seed resize-from {name} must be 0 (off) or a size up to {MaxSide}; got {value}.");
        if ((SeedResizeFromWidth > 0) != (SeedResizeFromHeight > 0))
            throw new ArgumentException($"Resize seed from needs a width and a height; got {SeedResizeFromWidth}x{SeedResizeFromHeight}.");
        if (Tiling && VaeTiling)
            throw new ArgumentException("Tiling (a seamless picture) needs the VAE to decode the whole picture at once; leave VAE tiling off.");
        if (ClipSkip < 1)
            throw new ArgumentException($"Clip skip must be at least 1 (1 = the last layer); got {ClipSkip}.");
        if (!Enum.IsDefined(PromptSyntax))
            throw new ArgumentException($"Unknown prompt syntax {PromptSyntax}; use Plain or A1111.");
        if (MaskImage is not null && Image is null)
            throw new ArgumentException("A mask needs an image to inpaint; give the image too.");
        if (Latents is not null && Image is not null)
            throw new ArgumentException("Initial latents are for text-to-image; img2img and inpainting start from the image.");
        if (Strength is double st && (!double.IsFinite(st) || st < 0 || st > 1))
            throw new ArgumentException($"Strength must be between 0 and 1; got {st.ToString(inv)}.");
        if (ImageLatents is not null && (Image is not null || Latents is not null))
            throw new ArgumentException("Image latents start img2img by themselves; give no picture and no initial latents with them.");
        if (Hires is not null)
        {
            if (Task != GenerationTask.TextToImage)
                throw new ArgumentException("The hires fix is a second pass of text-to-image; img2img and inpainting take no hires options.");
            Hires.Validate();
        }
        RefinerPass.Validate(this);
        if (Task != GenerationTask.TextToImage && DenoisingSteps < 1)
        {
            double least = Math.Ceiling(100.0 / NumInferenceSteps) / 100;
            throw new ArgumentException($"Strength {EffectiveStrength.ToString(inv)} with {NumInferenceSteps} steps runs no denoising step " +
                $"(int({NumInferenceSteps} × {EffectiveStrength.ToString(inv)}) = 0); raise the strength to at least {least.ToString(inv)} or use more steps.");
        }
        foreach (var lora in Loras)
            if (!double.IsFinite(lora.Scale) || lora.TextEncoderScale is double te && !double.IsFinite(te))
                throw new ArgumentException($"{lora.File.Path}: the LoRA scale must be a finite number.");
        if (DeepCacheInterval < 1 || DeepCacheInterval > MaxDeepCacheInterval)
            throw new ArgumentException($"The DeepCache interval must be 1 (off) to {MaxDeepCacheInterval}; got {DeepCacheInterval}.");
        if (MaskBlur < 0 || MaskBlur > MaxMaskBlur)
            throw new ArgumentException($"Mask blur must be between 0 and {MaxMaskBlur} pixels; got {MaskBlur}.");
    }
}

/// <summary>What a call does, decided by its inputs.</summary>
public enum GenerationTask { TextToImage, ImageToImage, Inpainting }
