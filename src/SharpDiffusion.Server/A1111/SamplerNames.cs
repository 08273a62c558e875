using SharpDiffusion.Schedulers;

namespace SharpDiffusion.Server.A1111;

/// <summary>
/// AUTOMATIC1111's sampler and schedule-type names onto this library's samplers. Since A1111 1.9 the sampler
/// ("DPM++ 2M") and the schedule ("Karras") are separate fields; older clients send "DPM++ 2M Karras" as one name.
/// </summary>
public static class SamplerNames
{
    /// <summary>A1111 sampler names this server runs (each also with the Karras schedule where it exists), with A1111's aliases.</summary>
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
    ];

    /// <summary>The schedule types accepted: A1111 names and labels.</summary>
    public static readonly IReadOnlyList<(string Name, string Label)> Schedules =
    [
        ("automatic", "Automatic"),
        ("uniform", "Uniform"),
        ("karras", "Karras"),
    ];

    /// <summary>The library's scheduler name for A1111's (<paramref name="sampler"/>, <paramref name="schedule"/>),
    /// or an <see cref="ArgumentException"/> that lists what is accepted.</summary>
    public static string Resolve(string sampler, string? schedule)
    {
        string name = sampler.Trim();
        var alias = Samplers.FirstOrDefault(s => s.Aliases.Contains(name, StringComparer.OrdinalIgnoreCase));
        if (alias.Name is not null) name = alias.Name;
        bool karras = name.EndsWith(" Karras", StringComparison.OrdinalIgnoreCase);
        string bare = karras ? name[..^" Karras".Length] : name;
        switch (schedule?.Trim().ToLowerInvariant())
        {
            case null or "" or "automatic" or "uniform": break;
            case "karras": karras = true; break;
            default:
                throw new UnknownNameException("scheduler", $"Schedule type '{schedule}' is not supported; use one of: {string.Join(", ", Schedules.Select(s => s.Label))}.");
        }
        var known = Samplers.FirstOrDefault(s => string.Equals(s.Name, bare, StringComparison.OrdinalIgnoreCase)).Name
            ?? throw new UnknownNameException("sampler", $"Sampler '{sampler}' not found; use one of: {string.Join(", ", Samplers.Select(s => s.Name))}.");
        string full = karras ? known + " Karras" : known;
        if (!SchedulerFactory.ValidNames.Contains(full, StringComparer.OrdinalIgnoreCase))
            throw new UnknownNameException(string.IsNullOrWhiteSpace(schedule) ? "sampler" : "scheduler",
                $"Sampler '{known}' has no Karras schedule here; use the Automatic schedule.");
        return full;
    }
}

/// <summary>A sampler or schedule name this server does not run. <see cref="Part"/> says which: "sampler" or "scheduler",
/// so the request error names the field that was wrong.</summary>
public sealed class UnknownNameException(string part, string message) : ArgumentException(message)
{
    public string Part => part;
}
