namespace SharpDiffusion.Schedulers;

/// <summary>
/// Which σ's a k-diffusion sampler (Euler, LMS, Heun, KDPM2) steps through, read from its config: a
/// <see cref="SigmaSpacing"/> (<c>use_karras_sigmas</c>, <c>use_exponential_sigmas</c>, <c>use_beta_sigmas</c>,
/// <c>use_sgm_uniform_sigmas</c>, <c>use_ays_sigmas</c>: at most one) with the data some spacings need, or a list the
/// user gives, as diffusers' <c>set_timesteps(sigmas=...)</c> (n+1 σ's, the last one the σ the sampler ends at) or
/// <c>set_timesteps(timesteps=...)</c> (n training timesteps, σ interpolated at them, ending at 0).
/// </summary>
public sealed record SigmaSchedule(SigmaSpacing Spacing, IReadOnlyList<double>? Values = null)
{
    public static SigmaSchedule Interpolated { get; } = new(SigmaSpacing.Interpolated);

    /// <summary>The schedule <paramref name="config"/> asks for; contradictory or malformed keys are refused in one line.</summary>
    public static SigmaSchedule FromConfig(SchedulerConfig config, string scheduler)
    {
        var flags = new (string Key, SigmaSpacing Spacing)[]
        {
            ("use_karras_sigmas", SigmaSpacing.Karras), ("use_exponential_sigmas", SigmaSpacing.Exponential),
            ("use_beta_sigmas", SigmaSpacing.Beta), ("use_sgm_uniform_sigmas", SigmaSpacing.SgmUniform),
            ("use_ays_sigmas", SigmaSpacing.AlignYourSteps),
        }.Where(f => config.GetBool(f.Key, false)).ToList();
        var sigmas = CustomList(config, "sigmas", scheduler);
        var timesteps = CustomList(config, "timesteps", scheduler);
        if (flags.Count > 1)
            throw new ArgumentException($"{scheduler}: only one of {string.Join(", ", flags.Select(f => f.Key))} can be true.");
        if (sigmas is not null && timesteps is not null)
            throw new ArgumentException($"{scheduler}: give sigmas or timesteps, not both.");
        if ((sigmas ?? timesteps) is not null && flags.Count == 1)
            throw new ArgumentException($"{scheduler}: a custom {(sigmas is null ? "timesteps" : "sigmas")} list replaces {flags[0].Key}; drop one of them.");
        if (sigmas is not null)
        {
            if (sigmas.Length < 2)
                throw new ArgumentException($"{scheduler}: sigmas needs at least 2 values (n steps take n+1 σ's, the last one where sampling ends, usually 0).");
            return new(SigmaSpacing.CustomSigmas, sigmas);
        }
        if (timesteps is not null)
            return new(SigmaSpacing.CustomTimesteps, timesteps);
        if (flags.Count == 0)
            return Interpolated;
        return flags[0].Spacing == SigmaSpacing.AlignYourSteps
            ? new(SigmaSpacing.AlignYourSteps, AlignYourSteps.NoiseLevelsFor(config, scheduler))
            : new(flags[0].Spacing);
    }

    /// <summary>How many steps a custom list makes (null for the other spacings: any count).</summary>
    public int? Steps => Spacing switch
    {
        SigmaSpacing.CustomSigmas => Values!.Count - 1,
        SigmaSpacing.CustomTimesteps => Values!.Count,
        _ => null,
    };

    /// <summary>Refuses a step count other than the custom list's.</summary>
    public void RequireSteps(int n)
    {
        if (Steps is int steps && steps != n)
            throw new ArgumentException($"--scheduler-option {(Spacing == SigmaSpacing.CustomSigmas ? $"sigmas ({Values!.Count} values)" : $"timesteps ({Values!.Count} values)")} " +
                $"makes {steps} steps, but {n} were asked; use --steps {steps}.");
    }

    /// <summary>A strictly decreasing, non-negative list of numbers (a JSON array, or "a,b,c" from the command line).</summary>
    static double[]? CustomList(SchedulerConfig config, string key, string scheduler)
    {
        if (!config.Has(key))
        {
            config.GetDoubleArray(key); // noted as an option the scheduler has
            return null;
        }
        double[] values;
        try
        {
            values = config.GetDoubleArray(key)!;
        }
        catch (FormatException)
        {
            string text = config.GetStringOrNull(key) ?? "";
            var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
            values = new double[parts.Length];
            for (int i = 0; i < parts.Length; i++)
                if (!double.TryParse(parts[i], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out values[i]))
                    throw new ArgumentException($"{scheduler}: {key} '{text}' must be numbers separated by commas, e.g. {key}=14.6,6.5,3.9,0.");
        }
        for (int i = 0; i < values.Length; i++)
        {
            if (!double.IsFinite(values[i]) || values[i] < 0)
                throw new ArgumentException($"{scheduler}: {key} value {values[i]} must be a finite number >= 0.");
            if (i > 0 && values[i] >= values[i - 1])
                throw new ArgumentException($"{scheduler}: {key} must be strictly decreasing (noise goes down step by step), but {values[i]} follows {values[i - 1]}.");
        }
        return values.Length > 0 ? values : throw new ArgumentException($"{scheduler}: {key} is empty; give one value per step.");
    }
}
