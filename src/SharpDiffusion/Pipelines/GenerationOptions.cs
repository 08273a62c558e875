namespace SharpDiffusion.Pipelines;

/// <summary>
/// Everything a user sets for one text-to-image call, named as diffusers names the pipeline's arguments.
/// </summary>
public sealed record GenerationOptions
{
    /// <summary>One image batch per prompt (times <see cref="NumImagesPerPrompt"/>).</summary>
    public required IReadOnlyList<string> Prompts { get; init; }

    /// <summary>None: "" for every prompt. One: applies to every prompt. As many as prompts: paired in order.</summary>
    public IReadOnlyList<string>? NegativePrompts { get; init; }

    /// <summary>Pixels; default: the UNet's sample_size × the VAE's scale factor (512 for SD 1.5).</summary>
    public int? Width { get; init; }
    public int? Height { get; init; }

    public int NumInferenceSteps { get; init; } = 50;

    /// <summary>Classifier-free guidance; ≤ 1 skips the unconditional pass, as diffusers does.</summary>
    public double GuidanceScale { get; init; } = 7.5;

    /// <summary>diffusers' guidance_rescale (0 = off); SD 2.x v-prediction models use ~0.7.</summary>
    public double GuidanceRescale { get; init; }

    /// <summary>Seed of the CPU generator all noise is drawn from; null picks a random one (reported in the result).</summary>
    public long? Seed { get; init; }

    public int NumImagesPerPrompt { get; init; } = 1;

    /// <summary>Scheduler name (diffusers class, short or AUTOMATIC1111 name); null = the model's own.</summary>
    public string? Scheduler { get; init; }

    /// <summary>Scheduler config keys to override, as diffusers' <c>from_config(config, key=value)</c>
    /// (e.g. timestep_spacing, use_karras_sigmas, prediction_type, steps_offset).</summary>
    public IReadOnlyDictionary<string, object?>? SchedulerOptions { get; init; }

    /// <summary>Decode the latents in overlapping tiles (diffusers' enable_vae_tiling): flat memory for large images
    /// (1024×1024 and up) at the price of tiny blending differences.</summary>
    public bool VaeTiling { get; init; }

    /// <summary>The negative prompt that pairs with prompt <paramref name="i"/>.</summary>
    public string NegativePromptFor(int i) => NegativePrompts switch
    {
        null or { Count: 0 } => "",
        { Count: 1 } one => one[0],
        var list => list[i],
    };
}

/// <summary>What the pipeline reports as it works.</summary>
public sealed record GenerationProgress(string Stage, int Step, int TotalSteps, TimeSpan Elapsed);
