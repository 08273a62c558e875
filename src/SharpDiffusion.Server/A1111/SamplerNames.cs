using SharpDiffusion.Schedulers;
using SharpDiffusion.Server.Catalog;

namespace SharpDiffusion.Server.A1111;

/// <summary>
/// AUTOMATIC1111's and Forge's sampler and schedule-type names onto this library's schedulers. Since A1111 1.9 the
/// sampler ("DPM++ 2M") and the schedule ("Karras") are separate fields; older clients send "DPM++ 2M Karras" as one
/// name. A diffusion (β-schedule) model takes the pairs of <see cref="DiffusionPairs"/>; a flow-matching model (SD3)
/// takes only Forge's "Euler" with the "Simple" (or "Automatic") schedule: diffusers' FlowMatchEulerDiscreteScheduler
/// with the model's own shift.
/// </summary>
public static class SamplerNames
{
    /// <summary>A1111 sampler names this server runs, with A1111's aliases.</summary>
    public static readonly IReadOnlyList<(string Name, string[] Aliases)> Samplers =
    [
        ("Euler a", ["k_euler_a", "k_euler_ancestral"]),
        ("Euler", ["k_euler"]),
        ("LMS", ["k_lms"]),
        ("Heun", ["k_heun"]),
        ("DPM2", ["k_dpm_2"]),
        ("DPM2 a", ["k_dpm_2_a"]),
        ("DPM++ 2M", ["k_dpmpp_2m"]),
        ("DPM++ 2M SDE", ["k_dpmpp_2m_sde"]),
        ("DDIM", ["ddim"]),
        ("PLMS", ["plms"]),
        ("UniPC", ["unipc"]),
        ("LCM", ["k_lcm"]),
    ];

    /// <summary>The schedule types listed (A1111 names and labels). Forge's "Simple" is accepted for flow-matching models
    /// but not listed: no diffusion sampler here has it.</summary>
    public static readonly IReadOnlyList<(string Name, string Label)> Schedules =
    [
        ("automatic", "Automatic"),
        ("uniform", "Uniform"),
        ("karras", "Karras"),
        ("exponential", "Exponential"),
        ("beta", "Beta"),
        ("sgm_uniform", "SGM Uniform"),
        ("align_your_steps", "Align Your Steps"),
    ];

    /// <summary>The schedules of a flow-matching model: Forge's "Simple" (σ's evenly spaced in t, shifted), which is
    /// also what "Automatic" gives.</summary>
    public static readonly IReadOnlyList<(string Name, string Label)> FlowSchedules = [("automatic", "Automatic"), ("simple", "Simple")];

    /// <summary>The library's scheduler for a diffusion model's (sampler, schedule); "" = Automatic/Uniform (the model's
    /// own spacing). A pair not here is refused: the library has no such scheduler (e.g. DPM++ 2M with exponential σ's).</summary>
    static readonly Dictionary<string, Dictionary<string, string>> DiffusionPairs = new(StringComparer.OrdinalIgnoreCase)
    {
        ["Euler a"] = new() { [""] = "Euler a" },
        ["Euler"] = KDiffusion("Euler", "euler_karras", "euler"),
        ["LMS"] = KDiffusion("LMS", "LMS Karras", "lms"),
        ["Heun"] = KDiffusion("Heun", "heun_karras", "heun"),
        ["DPM2"] = KDiffusion("DPM2", "DPM2 Karras", "kdpm2"),
        ["DPM2 a"] = KDiffusion("DPM2 a", "DPM2 a Karras", "kdpm2_a"),
        ["DPM++ 2M"] = new() { [""] = "DPM++ 2M", ["karras"] = "DPM++ 2M Karras", ["exponential"] = "dpmpp_2m_exponential", ["beta"] = "dpmpp_2m_beta" },
        ["DPM++ 2M SDE"] = new() { [""] = "DPM++ 2M SDE", ["karras"] = "DPM++ 2M SDE Karras", ["exponential"] = "dpmpp_2m_sde_exponential", ["beta"] = "dpmpp_2m_sde_beta" },
        ["DDIM"] = new() { [""] = "DDIM" },
        ["PLMS"] = new() { [""] = "PLMS" },
        ["UniPC"] = new() { [""] = "UniPC" },
        ["LCM"] = new() { [""] = "LCM" },
    };

    /// <summary>A k-diffusion sampler's schedules: the model's own, Karras, and the library's exponential, beta, SGM Uniform
    /// and Align Your Steps variants (<c>PREFIX_exponential</c>, …).</summary>
    static Dictionary<string, string> KDiffusion(string automatic, string karras, string prefix) => new()
    {
        [""] = automatic, ["karras"] = karras, ["exponential"] = prefix + "_exponential", ["beta"] = prefix + "_beta",
        ["sgm_uniform"] = prefix + "_sgm_uniform", ["align_your_steps"] = prefix + "_ays",
    };

    /// <summary>The only sampler of a flow-matching model and the library scheduler it is.</summary>
    public const string FlowSampler = "Euler";
    const string FlowScheduler = "flow_euler";

    /// <summary>The library's scheduler name for (<paramref name="sampler"/>, <paramref name="schedule"/>) on a model with
    /// <paramref name="traits"/> (null: a diffusion model), or an <see cref="UnknownNameException"/> that says what is taken.</summary>
    public static string Resolve(string sampler, string? schedule, ModelTraits? traits = null)
    {
        var (bare, scheduleName) = Split(sampler, schedule);
        if (traits is { FlowMatching: true })
            return ResolveFlow(sampler, schedule, bare, scheduleName, traits);
        if (scheduleName != "" && !Schedules.Any(s => s.Name == scheduleName))
            throw new UnknownNameException("scheduler", $"Schedule type '{schedule}' is not supported; use one of: {string.Join(", ", Schedules.Select(s => s.Label))}.");
        if (!DiffusionPairs.TryGetValue(bare, out var schedules))
            throw new UnknownNameException("sampler", $"Sampler '{sampler}' not found; use one of: {string.Join(", ", Samplers.Select(s => s.Name))}.");
        if (schedules.TryGetValue(scheduleName, out var name))
            return name;
        var label = Label(scheduleName);
        var with = DiffusionPairs.Where(p => p.Value.ContainsKey(scheduleName)).Select(p => p.Key);
        throw new UnknownNameException(string.IsNullOrWhiteSpace(schedule) ? "sampler" : "scheduler",
            $"Sampler '{Canonical(bare)}' has no {label} schedule here; use the Automatic schedule, or {label} with {string.Join(", ", with)}.");
    }

    /// <summary>As <see cref="Resolve"/> for a model not known yet (a gateway's, a queue worker's before it reads its own):
    /// a name some model takes passes, and the job resolves it again for the model it runs on.</summary>
    public static string ResolveAny(string sampler, string? schedule)
    {
        try { return Resolve(sampler, schedule); }
        catch (UnknownNameException)
        {
            try { return Resolve(sampler, schedule, AnyFlowModel); }
            catch (UnknownNameException) { }
            throw;
        }
    }

    static readonly ModelTraits AnyFlowModel = new("flow-matching", FlowMatching: true, HasT5: false);

    static string ResolveFlow(string sampler, string? schedule, string bare, string scheduleName, ModelTraits traits)
    {
        string takes = $"a {traits.Family} model samples by flow matching and takes sampler {FlowSampler} with schedule {string.Join(" or ", FlowSchedules.Select(s => s.Label))}";
        if (!string.Equals(bare, FlowSampler, StringComparison.OrdinalIgnoreCase) || bare != sampler.Trim() && !IsAlias(sampler, FlowSampler))
            throw new UnknownNameException("sampler", $"Sampler '{sampler}' is not available for this model: {takes}.");
        if (scheduleName is not ("" or "simple"))
            throw new UnknownNameException("scheduler", $"Schedule type '{schedule}' is not available for this model: {takes}.");
        return FlowScheduler;
    }

    /// <summary>Schedule-type label written into the infotext ("Karras"), or null when the sampler name the library
    /// writes already says it, the library writes it itself (<see cref="SchedulerFactory.A1111ScheduleLabel"/>: the
    /// schedules besides Karras) or it is the model's own (Automatic/Uniform). Flow-matching models: "Simple", as Forge.</summary>
    public static string? InfoTextSchedule(string sampler, string? schedule, string writtenSampler, ModelTraits traits)
    {
        if (traits.FlowMatching) return "Simple";
        var (_, scheduleName) = Split(sampler, schedule);
        if (scheduleName != "karras") return null;
        string label = Label(scheduleName);
        return writtenSampler.EndsWith(" " + label, StringComparison.Ordinal) ? null : label;
    }

    /// <summary>The sampler name without an old-style " Karras" suffix (aliases resolved) and the schedule's A1111 name
    /// ("" for Automatic/Uniform; "karras" when the name carried it).</summary>
    static (string Bare, string Schedule) Split(string sampler, string? schedule)
    {
        string name = sampler.Trim();
        var alias = Samplers.FirstOrDefault(s => s.Aliases.Contains(name, StringComparer.OrdinalIgnoreCase));
        if (alias.Name is not null) name = alias.Name;
        bool karras = name.EndsWith(" Karras", StringComparison.OrdinalIgnoreCase);
        string bare = karras ? name[..^" Karras".Length] : name;
        string s = schedule?.Trim().ToLowerInvariant() switch
        {
            null or "" or "automatic" or "uniform" => karras ? "karras" : "",
            var other => Schedules.Concat(FlowSchedules).FirstOrDefault(x => x.Name == other || x.Label.Equals(other, StringComparison.OrdinalIgnoreCase)).Name ?? other,
        };
        return (bare, s);
    }

    static bool IsAlias(string sampler, string name) =>
        Samplers.Any(s => s.Name == name && s.Aliases.Contains(sampler.Trim(), StringComparer.OrdinalIgnoreCase));

    static string Canonical(string bare) => DiffusionPairs.Keys.FirstOrDefault(k => k.Equals(bare, StringComparison.OrdinalIgnoreCase)) ?? bare;

    static string Label(string schedule) =>
        Schedules.Concat(FlowSchedules).FirstOrDefault(s => s.Name == schedule).Label ?? schedule;
}

/// <summary>A sampler or schedule name this server does not run. <see cref="Part"/> says which: "sampler" or "scheduler",
/// so the request error names the field that was wrong.</summary>
public sealed class UnknownNameException(string part, string message) : ArgumentException(message)
{
    public string Part => part;
}
