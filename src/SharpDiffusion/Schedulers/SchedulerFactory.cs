namespace SharpDiffusion.Schedulers;

/// <summary>
/// Builds schedulers by name: diffusers class names (<c>EulerDiscreteScheduler</c>), short names (<c>euler</c>)
/// and AUTOMATIC1111 sampler names (<c>"Euler"</c>, <c>"DPM++ 2M Karras"</c>); all case-insensitive. Like
/// diffusers' <c>Class.from_config(model_config)</c>, the config is the model's scheduler_config.json, so a
/// different scheduler keeps the model's β schedule but uses its own defaults for keys the file lacks.
/// </summary>
public static class SchedulerFactory
{
    /// <summary>One accepted name: the diffusers class it builds and the config keys it overrides;
    /// <paramref name="IsA1111"/> marks AUTOMATIC1111 sampler names.</summary>
    public sealed record SchedulerName(string Name, string ClassName, string Description, IReadOnlyDictionary<string, object> Overrides, bool IsA1111);

    static readonly Dictionary<string, Func<SchedulerConfig, IScheduler>> Classes = new(StringComparer.OrdinalIgnoreCase)
    {
        ["LMSDiscreteScheduler"] = c => new LMSDiscreteScheduler(c),
        ["PNDMScheduler"] = c => new PNDMScheduler(c),
        ["DDIMScheduler"] = c => new DDIMScheduler(c),
        ["EulerDiscreteScheduler"] = c => new EulerDiscreteScheduler(c),
        ["EulerAncestralDiscreteScheduler"] = c => new EulerAncestralDiscreteScheduler(c),
        ["DPMSolverMultistepScheduler"] = c => new DPMSolverMultistepScheduler(c),
        ["DDPMScheduler"] = c => new DDPMScheduler(c),
        ["HeunDiscreteScheduler"] = c => new HeunDiscreteScheduler(c),
        ["KDPM2DiscreteScheduler"] = c => new KDPM2DiscreteScheduler(c),
        ["KDPM2AncestralDiscreteScheduler"] = c => new KDPM2AncestralDiscreteScheduler(c),
        ["UniPCMultistepScheduler"] = c => new UniPCMultistepScheduler(c),
        ["FlowMatchEulerDiscreteScheduler"] = c => new FlowMatchEulerDiscreteScheduler(c),
        ["LCMScheduler"] = c => new LCMScheduler(c),
        ["TCDScheduler"] = c => new TCDScheduler(c),
    };

    static readonly Dictionary<string, object> NoOverrides = new();
    static readonly Dictionary<string, object> Karras = new() { ["use_karras_sigmas"] = true };
    static readonly Dictionary<string, object> Exponential = new() { ["use_exponential_sigmas"] = true };
    static readonly Dictionary<string, object> Beta = new() { ["use_beta_sigmas"] = true };
    static readonly Dictionary<string, object> SgmUniform = new() { ["use_sgm_uniform_sigmas"] = true };
    static readonly Dictionary<string, object> Ays = new() { ["use_ays_sigmas"] = true };
    static readonly Dictionary<string, object> Dpmpp2M = new() { ["algorithm_type"] = "dpmsolver++", ["solver_order"] = 2 };
    static readonly Dictionary<string, object> Dpmpp2MKarras = new(Dpmpp2M) { ["use_karras_sigmas"] = true };
    static readonly Dictionary<string, object> Dpmpp2MSde = new() { ["algorithm_type"] = "sde-dpmsolver++", ["solver_order"] = 2 };
    static readonly Dictionary<string, object> Dpmpp2MSdeKarras = new(Dpmpp2MSde) { ["use_karras_sigmas"] = true };
    static readonly Dictionary<string, object> Dpmpp2MExponential = new(Dpmpp2M) { ["use_exponential_sigmas"] = true };
    static readonly Dictionary<string, object> Dpmpp2MBeta = new(Dpmpp2M) { ["use_beta_sigmas"] = true };
    static readonly Dictionary<string, object> Dpmpp2MSdeExponential = new(Dpmpp2MSde) { ["use_exponential_sigmas"] = true };
    static readonly Dictionary<string, object> Dpmpp2MSdeBeta = new(Dpmpp2MSde) { ["use_beta_sigmas"] = true };

    // Wrapped read-only: the tables are shared by every caller in the process, and a Dictionary behind an
    // IReadOnlyDictionary can be cast back and changed.
    static SchedulerName N(string name, string cls, string description, Dictionary<string, object>? overrides = null) =>
        new(name, cls, description, (overrides ?? NoOverrides).AsReadOnly(), IsA1111: false);

    static SchedulerName A(string name, string cls, Dictionary<string, object>? overrides = null) =>
        new(name, cls, "AUTOMATIC1111 sampler name", (overrides ?? NoOverrides).AsReadOnly(), IsA1111: true);

    /// <summary>The config key of <see cref="Pipelines.GenerationOptions.Eta"/> (DDIM's η, TCD's γ): read by the schedulers that have one.</summary>
    public const string EtaKey = "eta";

    /// <summary>Every accepted name except the class names themselves (for <c>--scheduler list</c>).</summary>
    public static IReadOnlyList<SchedulerName> Names { get; } =
    [
        N("lms", "LMSDiscreteScheduler", "linear multistep (k-diffusion)"),
        N("lms_karras", "LMSDiscreteScheduler", "lms with Karras sigmas", Karras),
        N("lms_exponential", "LMSDiscreteScheduler", "lms with exponential sigmas", Exponential),
        N("lms_beta", "LMSDiscreteScheduler", "lms with beta sigmas", Beta),
        N("lms_sgm_uniform", "LMSDiscreteScheduler", "lms with A1111's SGM Uniform: timesteps evenly spaced over the training range", SgmUniform),
        N("lms_ays", "LMSDiscreteScheduler", "lms with Align Your Steps σ's (SD 1.5/SDXL lists; ays_model=sd15|sdxl)", Ays),
        N("pndm", "PNDMScheduler", "pseudo numerical methods (Runge-Kutta warm-up unless the config skips it)"),
        N("ddim", "DDIMScheduler", "denoising diffusion implicit models (eta 0: deterministic)"),
        N("euler", "EulerDiscreteScheduler", "Euler's method on the probability-flow ODE"),
        N("euler_karras", "EulerDiscreteScheduler", "euler with Karras sigmas", Karras),
        N("euler_exponential", "EulerDiscreteScheduler", "euler with σ's evenly spaced in log σ", Exponential),
        N("euler_beta", "EulerDiscreteScheduler", "euler with σ's at the quantiles of Beta(0.6, 0.6) (arXiv 2407.12173)", Beta),
        N("euler_sgm_uniform", "EulerDiscreteScheduler", "euler with A1111's SGM Uniform: timesteps evenly spaced over the training range", SgmUniform),
        N("euler_ays", "EulerDiscreteScheduler", "euler with Align Your Steps σ's (SD 1.5/SDXL lists; ays_model=sd15|sdxl)", Ays),
        N("euler_a", "EulerAncestralDiscreteScheduler", "ancestral Euler (adds fresh noise every step)"),
        N("euler_ancestral", "EulerAncestralDiscreteScheduler", "same as euler_a"),
        N("dpmpp_2m", "DPMSolverMultistepScheduler", "DPM-Solver++(2M) multistep", Dpmpp2M),
        N("dpmpp_2m_karras", "DPMSolverMultistepScheduler", "dpmpp_2m with Karras sigmas", Dpmpp2MKarras),
        N("dpmpp_2m_sde", "DPMSolverMultistepScheduler", "SDE variant of DPM-Solver++(2M) (draws noise)", Dpmpp2MSde),
        N("dpmpp_2m_sde_karras", "DPMSolverMultistepScheduler", "dpmpp_2m_sde with Karras sigmas", Dpmpp2MSdeKarras),
        N("dpmpp_2m_exponential", "DPMSolverMultistepScheduler", "dpmpp_2m with σ's evenly spaced in log σ, ending at 0", Dpmpp2MExponential),
        N("dpmpp_2m_beta", "DPMSolverMultistepScheduler", "dpmpp_2m with beta sigmas, ending at 0", Dpmpp2MBeta),
        N("dpmpp_2m_sde_exponential", "DPMSolverMultistepScheduler", "dpmpp_2m_sde with exponential sigmas, ending at 0", Dpmpp2MSdeExponential),
        N("dpmpp_2m_sde_beta", "DPMSolverMultistepScheduler", "dpmpp_2m_sde with beta sigmas, ending at 0", Dpmpp2MSdeBeta),
        N("ddpm", "DDPMScheduler", "ancestral DDPM sampling (draws noise)"),
        N("heun", "HeunDiscreteScheduler", "Heun's 2nd-order method (2 model calls per step)"),
        N("heun_karras", "HeunDiscreteScheduler", "heun with Karras sigmas", Karras),
        N("heun_exponential", "HeunDiscreteScheduler", "heun with exponential sigmas", Exponential),
        N("heun_beta", "HeunDiscreteScheduler", "heun with beta sigmas", Beta),
        N("heun_sgm_uniform", "HeunDiscreteScheduler", "heun with A1111's SGM Uniform: timesteps evenly spaced over the training range", SgmUniform),
        N("heun_ays", "HeunDiscreteScheduler", "heun with Align Your Steps σ's (SD 1.5/SDXL lists; ays_model=sd15|sdxl)", Ays),
        N("kdpm2", "KDPM2DiscreteScheduler", "DPM-2 midpoint method (2 model calls per step)"),
        N("dpm2", "KDPM2DiscreteScheduler", "same as kdpm2"),
        N("kdpm2_karras", "KDPM2DiscreteScheduler", "kdpm2 with Karras sigmas", Karras),
        N("kdpm2_exponential", "KDPM2DiscreteScheduler", "kdpm2 with exponential sigmas", Exponential),
        N("kdpm2_beta", "KDPM2DiscreteScheduler", "kdpm2 with beta sigmas", Beta),
        N("kdpm2_sgm_uniform", "KDPM2DiscreteScheduler", "kdpm2 with A1111's SGM Uniform: timesteps evenly spaced over the training range", SgmUniform),
        N("kdpm2_ays", "KDPM2DiscreteScheduler", "kdpm2 with Align Your Steps σ's (SD 1.5/SDXL lists; ays_model=sd15|sdxl)", Ays),
        N("kdpm2_a", "KDPM2AncestralDiscreteScheduler", "ancestral DPM-2 (draws noise; 2 model calls per step)"),
        N("dpm2_a", "KDPM2AncestralDiscreteScheduler", "same as kdpm2_a"),
        N("kdpm2_a_exponential", "KDPM2AncestralDiscreteScheduler", "kdpm2_a with exponential sigmas", Exponential),
        N("kdpm2_a_beta", "KDPM2AncestralDiscreteScheduler", "kdpm2_a with beta sigmas", Beta),
        N("kdpm2_a_sgm_uniform", "KDPM2AncestralDiscreteScheduler", "kdpm2_a with A1111's SGM Uniform: timesteps evenly spaced over the training range", SgmUniform),
        N("kdpm2_a_ays", "KDPM2AncestralDiscreteScheduler", "kdpm2_a with Align Your Steps σ's (SD 1.5/SDXL lists; ays_model=sd15|sdxl)", Ays),
        N("unipc", "UniPCMultistepScheduler", "UniPC predictor-corrector (bh2, order 2)"),
        N("lcm", "LCMScheduler", "latent consistency models: 2-8 steps with an LCM-distilled model or LoRA (draws noise)"),
        N("tcd", "TCDScheduler", "trajectory consistency distillation, gamma (eta) 0.3 (draws noise)"),
        N("flow_euler", "FlowMatchEulerDiscreteScheduler", "Euler on the flow-matching ODE (SD3, Flux)"),
        A("LMS", "LMSDiscreteScheduler"),
        A("LMS Karras", "LMSDiscreteScheduler", Karras),
        // A1111's PLMS is PNDM without the Runge-Kutta warm-up.
        A("PLMS", "PNDMScheduler", new() { ["skip_prk_steps"] = true }),
        A("DDIM", "DDIMScheduler"),
        A("Euler", "EulerDiscreteScheduler"),
        A("Euler a", "EulerAncestralDiscreteScheduler"),
        A("Heun", "HeunDiscreteScheduler"),
        A("DPM2", "KDPM2DiscreteScheduler"),
        A("DPM2 Karras", "KDPM2DiscreteScheduler", Karras),
        A("DPM2 a", "KDPM2AncestralDiscreteScheduler"),
        A("DPM2 a Karras", "KDPM2AncestralDiscreteScheduler", Karras),
        A("DPM++ 2M", "DPMSolverMultistepScheduler", Dpmpp2M),
        A("DPM++ 2M Karras", "DPMSolverMultistepScheduler", Dpmpp2MKarras),
        A("DPM++ 2M SDE", "DPMSolverMultistepScheduler", Dpmpp2MSde),
        A("DPM++ 2M SDE Karras", "DPMSolverMultistepScheduler", Dpmpp2MSdeKarras),
        A("UniPC", "UniPCMultistepScheduler"),
        A("LCM", "LCMScheduler"),
    ];

    /// <summary>Names accepted by <see cref="Create"/>: class names, short names and A1111 names.</summary>
    public static IEnumerable<string> ValidNames => Classes.Keys.Concat(Names.Select(n => n.Name));

    /// <summary>Builds the scheduler called <paramref name="name"/> from the model's <paramref name="config"/>.</summary>
    /// <exception cref="ArgumentException">Unknown name; the message lists the valid ones.</exception>
    public static IScheduler Create(string name, SchedulerConfig config)
    {
        string trimmed = name.Trim();
        if (Classes.TryGetValue(trimmed, out var ctor))
            return ctor(config);
        // A1111 names differ from short names only by case in a few places ("lms" / "LMS"): prefer an exact match.
        var entry = Names.FirstOrDefault(n => n.Name == trimmed) ??
                    Names.FirstOrDefault(n => string.Equals(n.Name, trimmed, StringComparison.OrdinalIgnoreCase));
        if (entry is null)
            throw new ArgumentException($"Unknown scheduler '{name}'. Valid names: {string.Join(", ", ValidNames.Distinct(StringComparer.OrdinalIgnoreCase))}.", nameof(name));
        foreach (var (key, value) in entry.Overrides)
            config = config.With(key, value);
        return Classes[entry.ClassName](config);
    }

    /// <summary>The scheduler a generation call asks for: <paramref name="name"/> (or, when null, the one the model's
    /// <paramref name="modelConfig"/> names) with the user's <paramref name="options"/> (<c>--scheduler-option</c>) over
    /// the model's keys. Unlike the model's own file, whose unknown keys diffusers ignores, an option the scheduler does
    /// not read would silently change nothing the user expects, so it is refused by name with the valid ones listed
    /// (the valid ones are the keys the scheduler asked its config for while it was built).</summary>
    /// <exception cref="ArgumentException">Unknown scheduler name or option.</exception>
    public static IScheduler Create(string? name, SchedulerConfig modelConfig, IReadOnlyDictionary<string, object?>? options)
    {
        var config = modelConfig;
        foreach (var (key, value) in options ?? new Dictionary<string, object?>())
            config = config.With(key, value);
        var recording = config.Recording();
        var scheduler = name is null ? FromConfig(recording) : Create(name, recording);
        var read = recording.KeysAsked;
        var unknown = (options?.Keys ?? []).Where(k => !read.Contains(k)).Order(StringComparer.Ordinal).ToList();
        if (unknown.Count == 0)
            return scheduler;
        (scheduler as IDisposable)?.Dispose();
        if (unknown.SequenceEqual([EtaKey]))
            throw new ArgumentException($"--eta: the {name?.Trim() ?? scheduler.Name} scheduler has no eta (DDIM and TCD have); leave --eta out or pick one of those.");
        throw new ArgumentException($"--scheduler-option {string.Join(", ", unknown)}: the {name?.Trim() ?? scheduler.Name} scheduler has no such option" +
            $"{(unknown.Count > 1 ? "s" : "")}; valid: {string.Join(", ", read)}.");
    }

    /// <summary>The config keys the scheduler called <paramref name="name"/> reads (its options), given the model's config.</summary>
    public static IReadOnlyList<string> OptionsOf(string name, SchedulerConfig modelConfig)
    {
        var recording = modelConfig.Recording();
        (Create(name, recording) as IDisposable)?.Dispose();
        return recording.KeysAsked;
    }

    /// <summary>The scheduler the config itself names (<c>_class_name</c>): the model's own.</summary>
    public static IScheduler FromConfig(SchedulerConfig config) =>
        config.ClassName is { } cls
            ? Create(cls, config)
            : throw new ArgumentException("The scheduler config has no _class_name; pass a scheduler name instead.", nameof(config));

    /// <summary>The AUTOMATIC1111 sampler name for PNG "parameters" metadata ("Euler a", "DPM++ 2M Karras", …);
    /// the diffusers short name where A1111 has no equivalent.</summary>
    public static string A1111Name(IScheduler scheduler)
    {
        bool karras = scheduler.Config.GetBool("use_karras_sigmas", false);
        string suffix = karras ? " Karras" : "";
        return scheduler switch
        {
            LMSDiscreteScheduler => "LMS" + suffix,
            PNDMScheduler => "PLMS",
            DDIMScheduler => "DDIM",
            EulerDiscreteScheduler => "Euler",
            EulerAncestralDiscreteScheduler => "Euler a",
            HeunDiscreteScheduler => "Heun",
            KDPM2DiscreteScheduler => "DPM2" + suffix,
            KDPM2AncestralDiscreteScheduler => "DPM2 a" + suffix,
            DPMSolverMultistepScheduler { AlgorithmType: "sde-dpmsolver++", SolverOrder: 2 } => "DPM++ 2M SDE" + suffix,
            DPMSolverMultistepScheduler { AlgorithmType: "dpmsolver++", SolverOrder: 2 } => "DPM++ 2M" + suffix,
            UniPCMultistepScheduler => "UniPC",
            LCMScheduler => "LCM",
            _ => Names.FirstOrDefault(n => !n.IsA1111 && n.ClassName == scheduler.Name && n.Overrides.Count == 0)?.Name ?? scheduler.Name,
        };
    }

    /// <summary>AUTOMATIC1111's "Schedule type" label for the infotext (its sd_schedulers labels: "Exponential", "Beta",
    /// "SGM Uniform", "Align Your Steps"), or null when the sampler name carries it (" Karras", the old style A1111 still
    /// reads) or the schedule is the model's own (Automatic) or a custom list (A1111 has no label for one).</summary>
    public static string? A1111ScheduleLabel(IScheduler scheduler)
    {
        var config = scheduler.Config;
        if (config.GetBool("use_exponential_sigmas", false)) return "Exponential";
        if (config.GetBool("use_beta_sigmas", false)) return "Beta";
        if (config.GetBool("use_sgm_uniform_sigmas", false)) return "SGM Uniform";
        if (config.GetBool("use_ays_sigmas", false)) return "Align Your Steps";
        return null;
    }
}
