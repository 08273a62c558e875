using System.Globalization;
using SharpDiffusion.Adapters;
using SharpDiffusion.Families.StableDiffusion;
using static TorchSharp.torch;

namespace SharpDiffusion.Pipelines;

/// <summary>
/// SDXL base → refiner as diffusers' ensemble of expert denoisers (<see cref="RefinerOptions"/>): the base runs the
/// schedule down to the switch (denoising_end, output_type="latent"), the refiner continues from those latents at the
/// same timestep (denoising_start: no noise added, nothing drawn) with its own conditioning (bigG only, aesthetic-score
/// time ids), scheduler and VAE, and a new generator of the same seed. Two passes of the shared core, as
/// <see cref="HiresFix"/>; the refiner pass is refused before the base pass runs.
/// </summary>
public static class RefinerPass
{
    public static GenerationResult Run(StableDiffusionPipeline pipe, GenerationOptions options, IProgress<GenerationProgress>? progress,
        Action<int, Tensor>? onStepEnd, CancellationToken cancellation, Action<int, Tensor>? onDenoised)
    {
        options.Validate();
        var refinerOptions = options.Refiner!;
        var refiner = refinerOptions.Refiner;
        RefuseBase(pipe);
        RefuseRefiner(refiner, pipe);
        var baseOptions = options with { Refiner = null, DenoisingEnd = refinerOptions.SwitchAt, LatentsOnly = true };
        var (width, height) = pipe.Validate(baseOptions);
        bool a1111 = options.PromptSyntax == PromptSyntax.A1111;
        var secondBase = options with
        {
            Refiner = null,
            Width = null,
            Height = null,
            Latents = null,
            DenoisingStart = refinerOptions.SwitchAt,
            // The refiner's encoder reads the prompt itself (diffusers zips [prompt, prompt_2] with its one tokenizer);
            // LoRAs and ControlNets belong to the base; the refiner draws no noise.
            Prompts = a1111 ? options.Prompts.Select(p => LoraPromptTags.Extract(p, [])).ToList() : options.Prompts,
            Prompts2 = null,
            NegativePrompts2 = null,
            Loras = [],
            LoraDirectory = null,
            ControlNets = [],
            VariationStrength = 0,
            SeedResizeFromWidth = 0,
            SeedResizeFromHeight = 0,
        };
        var f = pipe.LatentFormat.SpatialFactor;
        using (var shapeCheck = zeros(1, pipe.LatentFormat.Channels, height / f, width / f))
            refiner.Validate(secondBase with { ImageLatents = shapeCheck });                   // refused before the base pass

        using var first = pipe.Generate(baseOptions, progress, onStepEnd, cancellation, onDenoised);
        using var second = refiner.Generate(secondBase with { Seed = first.Seed, ImageLatents = first.Latents },
            progress, onStepEnd, cancellation, onDenoised);
        return new GenerationResult
        {
            Images = second.Images,
            Seed = first.Seed,
            VariationSeed = first.VariationSeed,
            SchedulerName = first.SchedulerName,
            SamplerName = first.SamplerName,
            ScheduleType = first.ScheduleType,
            InfoGuidance = first.InfoGuidance,
            Warnings = first.Warnings.Concat(second.Warnings).Distinct().ToList(),
            Loras = first.Loras,
            Width = second.Width,
            Height = second.Height,
            Latents = second.Latents.alias(),
            ImageFloat = second.ImageFloat.alias(),
        };
    }

    /// <summary>A refiner continues an SDXL base model's latents: anything else is refused in one line.</summary>
    public static void RefuseBase(StableDiffusionPipeline pipe)
    {
        if (pipe.Family is StableDiffusionXLRefinerFamily)
            throw new ArgumentException($"{pipe.ModelName} is itself an SDXL refiner: give the SDXL base model as the model and the refiner as the refiner.");
        if (pipe.Family is not StableDiffusionXLFamily)
            throw new ArgumentException($"A refiner is a second pass for SDXL base models; {pipe.ModelName} is {pipe.Family}: drop the refiner or use an SDXL model.");
    }

    static void RefuseRefiner(StableDiffusionPipeline refiner, StableDiffusionPipeline pipe)
    {
        if (refiner.Family is not StableDiffusionXLRefinerFamily)
            throw new ArgumentException($"The refiner {refiner.ModelName} is {refiner.Family}, not an SDXL refiner (text_encoder_2 only, aesthetic-score time ids): give sd_xl_refiner_1.0 or a refiner folder.");
        if (refiner.LatentFormat.Channels != pipe.LatentFormat.Channels || refiner.LatentFormat.SpatialFactor != pipe.LatentFormat.SpatialFactor)
            throw new ArgumentException($"The refiner {refiner.ModelName} works on other latents than {pipe.ModelName} ({refiner.LatentFormat.Channels} channels at 1/{refiner.LatentFormat.SpatialFactor}).");
    }

    /// <summary>What the options ask of a refiner pass or of denoising_start/end that cannot be done (one line each).</summary>
    internal static void Validate(GenerationOptions o)
    {
        var inv = CultureInfo.InvariantCulture;
        foreach (var (name, value) in new[] { ("denoising_end", o.DenoisingEnd), ("denoising_start", o.DenoisingStart) })
            if (value is double v && (!double.IsFinite(v) || v <= 0 || v >= 1))
                throw new ArgumentException($"{name} must be between 0 and 1 (a fraction of the schedule); got {v.ToString(inv)}.");
        if (o.DenoisingStart is not null && o.ImageLatents is null)
            throw new ArgumentException("denoising_start continues from latents (a base model's output_type=\"latent\" result): give them as the image latents.");
        if (!double.IsFinite(o.AestheticScore) || !double.IsFinite(o.NegativeAestheticScore))
            throw new ArgumentException("The aesthetic scores must be finite numbers (the refiner's defaults are 6 and 2.5).");
        if (o.Refiner is not { } refiner)
            return;
        refiner.Validate();
        if (o.Task != GenerationTask.TextToImage)
            throw new ArgumentException("The refiner continues a text-to-image pass of the base model; for img2img give the refiner itself as the model with the image.");
        if (o.Hires is not null)
            throw new ArgumentException("The refiner and the hires fix cannot be combined yet: run the hires fix, then refine its picture with the refiner as the model (img2img).");
        if (o.DenoisingEnd is not null || o.LatentsOnly)
            throw new ArgumentException("With a refiner the switch sets where the base stops (refiner_switch_at); give no denoising_end or latent output.");
        if (o.PromptEmbeds is not null)
            throw new ArgumentException("The refiner encodes its own prompts (bigG only): give prompts, not prompt embeddings, with a refiner.");
    }
}
