using SharpDiffusion.Schedulers;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Schedulers;

/// <summary>
/// Issue 10, item 5: every scheduler, every timestep_spacing, with and without Karras sigmas where the scheduler
/// has them, works or refuses cleanly for every step count from 1 to num_train_timesteps. No model: SetTimesteps
/// for every count, full ScaleModelInput/Step loops for a sample of counts.
/// </summary>
public class SchedulerEdgeSweepTests
{
    static readonly string[] Spacings = [TimestepSpacing.Linspace, TimestepSpacing.Leading, TimestepSpacing.Trailing];

    static readonly HashSet<string> KarrasClasses =
    [
        "LMSDiscreteScheduler", "EulerDiscreteScheduler", "HeunDiscreteScheduler", "KDPM2DiscreteScheduler",
        "KDPM2AncestralDiscreteScheduler", "DPMSolverMultistepScheduler", "UniPCMultistepScheduler",
    ];

    static readonly int[] LoopCounts = [1, 2, 3, 4, 7, 50, 999, 1000];

    /// <summary>Each class (and the variants that change the schedule's shape: PNDM with its Runge–Kutta warm-up,
    /// DPM-Solver's SDE and first-order forms) × spacing × Karras.</summary>
    public static TheoryData<string, string, bool, string> Variants()
    {
        var data = new TheoryData<string, string, bool, string>();
        var classes = SchedulerFactory.ValidNames.Where(n => n.EndsWith("Scheduler")).Distinct().ToList();
        foreach (string cls in classes)
        {
            var extras = new List<string> { "" };
            if (cls == "PNDMScheduler") extras.Add("skip_prk_steps=false");
            if (cls == "DPMSolverMultistepScheduler") extras.AddRange(["algorithm_type=sde-dpmsolver++", "solver_order=1"]);
            if (SchedulerFactory.OptionsOf(cls, SchedulerGolden.Sd14Config()).Contains("use_beta_sigmas"))
                extras.AddRange(["use_exponential_sigmas=true", "use_beta_sigmas=true"]);
            // Schedulers without timestep_spacing (flow matching, LCM, TCD) have one schedule per step count.
            bool spaced = SchedulerFactory.OptionsOf(cls, SchedulerGolden.Sd14Config()).Contains("timestep_spacing");
            foreach (string spacing in spaced ? Spacings : [TimestepSpacing.Linspace])
                foreach (bool karras in KarrasClasses.Contains(cls) ? new[] { false, true } : [false])
                    foreach (string extra in extras.Where(e => !(karras && e.EndsWith("_sigmas=true"))))   // one σ spacing at a time
                        data.Add(cls, spacing, karras, extra);
        }
        return data;
    }

    static IScheduler Create(string cls, string spacing, bool karras, string extra)
    {
        var config = SchedulerGolden.Sd14Config().With("timestep_spacing", spacing);
        if (karras) config = config.With("use_karras_sigmas", true);
        if (extra.Length > 0)
        {
            var (key, value) = (extra[..extra.IndexOf('=')], extra[(extra.IndexOf('=') + 1)..]);
            config = config.With(key, value switch { "false" => false, "true" => true, _ when int.TryParse(value, out int i) => i, _ => value });
        }
        return SchedulerFactory.Create(cls, config);
    }

    /// <summary>A refusal is one of the documented types with a one-line message that names the scheduler.</summary>
    static void AssertCleanRefusal(Exception e, string what)
    {
        Assert.True(e is ArgumentException or NotSupportedException,
            $"{what}: {e.GetType().Name} is not a clean refusal: {e}");
        Assert.DoesNotContain('\n', e.Message);
    }

    [Theory, MemberData(nameof(Variants))]
    public void Every_step_count_sets_finite_timesteps_or_refuses(string cls, string spacing, bool karras, string extra)
    {
        var scheduler = Create(cls, spacing, karras, extra);
        int numTrain = ((SchedulerBase)scheduler).NumTrainTimesteps;
        for (int n = 1; n <= numTrain; n++)
        {
            string what = $"{cls} {spacing}{(karras ? " karras" : "")} {extra} steps={n}";
            try
            {
                scheduler.SetTimesteps(n);
            }
            catch (Exception e)
            {
                AssertCleanRefusal(e, what);
                continue;
            }
            Assert.NotEmpty(scheduler.Timesteps);
            // Flow matching's timesteps are σ·T with σ in (0, 1]: T itself is the first.
            float maxTimestep = scheduler is FlowMatchEulerDiscreteScheduler ? numTrain : numTrain - 1;
            Assert.All(scheduler.Timesteps, t => Assert.True(float.IsFinite(t) && t >= 0 && t <= maxTimestep, $"{what}: timestep {t}"));
            if (scheduler.Sigmas is { } sigmas)
                Assert.All(sigmas, s => Assert.True(float.IsFinite(s) && s >= 0, $"{what}: sigma {s}"));
            Assert.True(float.IsFinite(scheduler.InitNoiseSigma), $"{what}: init_noise_sigma {scheduler.InitNoiseSigma}");
        }
        (scheduler as IDisposable)?.Dispose();
    }

    [Theory, MemberData(nameof(Variants))]
    public void Sampled_step_counts_run_to_the_end_with_finite_samples(string cls, string spacing, bool karras, string extra)
    {
        var scheduler = Create(cls, spacing, karras, extra);
        using var generator = new Generator(0);
        foreach (int n in LoopCounts)
        {
            string what = $"{cls} {spacing}{(karras ? " karras" : "")} {extra} steps={n}";
            try
            {
                scheduler.SetTimesteps(n);
            }
            catch (Exception e)
            {
                AssertCleanRefusal(e, what);
                continue;
            }
            using var scope = NewDisposeScope();
            var sample = randn([1, 4, 2, 2], generator: generator) * scheduler.InitNoiseSigma;
            foreach (float t in scheduler.Timesteps)
            {
                var scaled = scheduler.ScaleModelInput(sample, t);
                var output = 0.1f * scaled;   // a stand-in ε prediction
                sample = scheduler.Step(output, t, sample, generator);
            }
            Assert.True(sample.isfinite().all().item<bool>(), $"{what}: the final sample is not finite");
        }
        (scheduler as IDisposable)?.Dispose();
    }
}
