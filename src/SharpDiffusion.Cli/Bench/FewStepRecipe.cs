using SharpDiffusion.Pipelines;

namespace SharpDiffusion.Cli.Bench;

/// <summary>
/// One way to make a whole image that `bench --fewstep` times: a scheduler and its steps, the guidance (≤ 1: no CFG batch),
/// DeepCache's interval (1 = off) and the decoder (TAESD or the model's full VAE). <see cref="TimedSteps"/> below
/// <see cref="Steps"/> runs only that many steps and extrapolates the denoising (<see cref="FewStepRow.ExtrapolatedTo"/>).
/// </summary>
public sealed record FewStepRecipe(string Name, string Scheduler, int Steps, double Guidance, bool Taesd)
{
    public int DeepCacheInterval { get; init; } = 1;
    public IReadOnlyDictionary<string, object?>? SchedulerOptions { get; init; }
    public int TimedSteps { get; init; } = Steps;

    /// <summary>The recipes in the order they are timed: the usual image first (full VAE), then the TAESD ones.</summary>
    public static List<FewStepRecipe> Standard(FewStepSettings s) =>
    [
        new("Euler + CFG + full VAE", "euler", s.ReferenceSteps, 7.5, Taesd: false) { TimedSteps = s.TimedReferenceSteps },
        new("LCM + TAESD", "lcm", s.FewSteps, 1.0, Taesd: true),
        new($"LCM + DeepCache (every {s.DeepCacheInterval}) + TAESD", "lcm", s.FewSteps, 1.0, Taesd: true) { DeepCacheInterval = s.DeepCacheInterval },
        // SD-Turbo/SDXL-Turbo as their model cards run them: one step, guidance 0 (no CFG batch), trailing spacing so the
        // one step starts from pure noise at t = 999.
        new("SD-Turbo recipe (Euler a, trailing, guidance 0) + TAESD", "euler_a", 1, 0.0, Taesd: true)
        {
            SchedulerOptions = new Dictionary<string, object?> { ["timestep_spacing"] = "trailing" },
        },
    ];
}

/// <summary>`bench --fewstep`'s options, checked before anything is loaded.</summary>
public sealed record FewStepSettings(int Width, int Height, int FewSteps, int ReferenceSteps, int TimedReferenceSteps, int DeepCacheInterval)
{
    /// <param name="fewSteps">--fewstep-steps (default 4).</param>
    /// <param name="referenceSteps">--total-steps: the reference image's Euler steps.</param>
    /// <param name="timedReferenceSteps">--fewstep-reference-steps (default: all of them).</param>
    /// <param name="deepCache">--deep-cache: the DeepCache row's interval (default 2).</param>
    public static FewStepSettings From(int width, int height, int? fewSteps, int referenceSteps, int? timedReferenceSteps, int? deepCache)
    {
        int few = fewSteps ?? 4, timed = timedReferenceSteps ?? referenceSteps, interval = deepCache ?? 2;
        if (few < 1) throw new UsageException($"--fewstep-steps must be at least 1; got {few}.");
        if (referenceSteps < 1) throw new UsageException($"--total-steps must be at least 1; got {referenceSteps}.");
        if (timed < 1 || timed > referenceSteps)
            throw new UsageException($"--fewstep-reference-steps must be 1 to --total-steps ({referenceSteps}); got {timed}.");
        if (interval < 2 || interval > GenerationOptions.MaxDeepCacheInterval)
            throw new UsageException($"--deep-cache with --fewstep is the DeepCache row's interval, 2 to {GenerationOptions.MaxDeepCacheInterval}; got {interval}.");
        return new FewStepSettings(width, height, few, referenceSteps, timed, interval);
    }
}
