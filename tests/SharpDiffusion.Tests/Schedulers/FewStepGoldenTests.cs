using SharpDiffusion.Schedulers;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Schedulers;

/// <summary>
/// golden/v3/fewstep/small-sd15 (issue 25 item 1): LCM, TCD, Euler with exponential and beta σ's, Euler trailing 1 step.
/// The schedule must equal diffusers'; replaying the stored UNet outputs (CFG recomputed from their rows) through our
/// Step from the pipeline's first draw must reproduce every latents_steps entry, with the noise LCM/TCD draw taken
/// from the same generator stream (the stored rng_1… draws).
/// </summary>
public class FewStepGoldenTests(ITestOutputHelper output)
{
    public static TheoryData<string> Cases() => V3Golden.Cases("fewstep/", "latents_steps");

    [Theory, MemberData(nameof(Cases))]
    public void Schedule_matches_diffusers(string file)
    {
        var info = V3Golden.Info(file);
        var g = V3Golden.Load(file);
        var scheduler = V3Golden.Scheduler(info);
        Assert.Equal(info["scheduler"]!["class"]!.GetValue<string>(), scheduler.Name);
        scheduler.SetTimesteps((int)V3Golden.Kwarg(info, "num_inference_steps"));

        // Exponential and beta σ's find their timesteps by interpolating ln σ in a float32 table: diffusers' numpy log
        // and ours differ by an ulp at some σ, which moves such a timestep by up to ~2e-5 (all others are equal).
        double timestepDiff = V3Golden.MaxAbsDiff(scheduler.Timesteps, g["scheduler_timesteps"]);
        Assert.True(timestepDiff <= 1e-6 * Golden.MaxAbs(g["scheduler_timesteps"]), $"timesteps differ by {timestepDiff:E3}");
        Assert.Equal(g["scheduler_timesteps"].shape[0], g["denoiser_timesteps"].shape[0]);
        Assert.True(Golden.MaxAbsDiff(g["scheduler_timesteps"], g["denoiser_timesteps"]) == 0, "the UNet saw the schedule's timesteps");
        string sigmas = "";
        if (g.TryGetValue("scheduler_sigmas", out var expected))
        {
            Assert.NotNull(scheduler.Sigmas);
            double sigmaDiff = V3Golden.MaxAbsDiff(scheduler.Sigmas!, expected);
            Assert.True(sigmaDiff <= 1e-6 * Golden.MaxAbs(expected), $"sigmas differ by {sigmaDiff:E3}");
            sigmas = $", sigmas max |diff| {sigmaDiff:E2}";
        }
        output.WriteLine($"{file}: timesteps max |diff| {timestepDiff:E2}{sigmas}");
    }

    [Theory, MemberData(nameof(Cases))]
    public void Replaying_the_unet_outputs_reproduces_every_step(string file)
    {
        var info = V3Golden.Info(file);
        var g = V3Golden.Load(file);
        var scheduler = V3Golden.Scheduler(info);
        double guidance = V3Golden.Kwarg(info, "guidance_scale");
        scheduler.SetTimesteps((int)V3Golden.Kwarg(info, "num_inference_steps"));
        if (scheduler is TCDScheduler tcd && info["kwargs"]!["eta"] is { } eta)
            tcd.Eta = eta.GetValue<float>();

        // The pipeline's generator: torch.manual_seed(seed); its first draw is the initial latents.
        using var generator = new Generator((ulong)V3Golden.Seed(info));
        var latents = randn(g["rng_0"].shape, generator: generator);
        Assert.True(Golden.MaxAbsDiff(latents, g["rng_0"]) <= 1e-6, "rng_0: the seeded generator's first draw differs");
        latents = latents * scheduler.InitNoiseSigma;

        var outputs = g["denoiser_outputs"];
        double worstInput = 0, worst = 0;
        for (int i = 0; i < scheduler.Timesteps.Count; i++)
        {
            float t = scheduler.Timesteps[i];
            using var scaled = scheduler.ScaleModelInput(latents, t);
            if (i == 0)   // the UNet's first input: the scaled latents (twice under CFG)
                worstInput = V3Golden.Relative(scaled, g["denoiser_call0_sample"][0..1], SchedulerGolden.Tolerance, "denoiser_call0_sample");
            latents = scheduler.Step(V3Golden.Guided(outputs[i], guidance), t, latents, generator);
            worst = Math.Max(worst, V3Golden.Relative(latents, g["latents_steps"][i], SchedulerGolden.Tolerance, $"latents_steps[{i}] (t={t})"));
        }

        // The scheduler drew exactly the stored rng_1… tensors: a fresh stream past all draws is where ours is now.
        using var reference = new Generator((ulong)V3Golden.Seed(info));
        int draws = g.Keys.Count(k => k.StartsWith("rng_"));
        for (int k = 0; k < draws; k++)
            Assert.True(Golden.MaxAbsDiff(randn(g[$"rng_{k}"].shape, generator: reference), g[$"rng_{k}"]) <= 1e-6, $"rng_{k}");
        if (scheduler is LCMScheduler or TCDScheduler)
            Assert.Equal(randn([4], generator: reference).data<float>().ToArray(), randn([4], generator: generator).data<float>().ToArray());
        output.WriteLine($"{file}: {scheduler.Timesteps.Count} steps, first UNet input max rel diff {worstInput:E2}, latents max |diff| / max |expected| {worst:E2} ({draws} rng draws)");
    }
}

/// <summary>The other k-diffusion schedulers with exponential and beta σ's (diffusers 0.31 gives them the same
/// conversion as Euler; golden cases exist for Euler only): from the Euler case's model config, LMS's σ's and Heun's
/// distinct σ's are the golden's.</summary>
public class SigmaSpacingTests
{
    [Theory]
    [InlineData("fewstep/small-sd15/euler_exponential_8steps_g7_seed6.safetensors", "LMSDiscreteScheduler")]
    [InlineData("fewstep/small-sd15/euler_beta_8steps_g7_seed7.safetensors", "LMSDiscreteScheduler")]
    [InlineData("fewstep/small-sd15/euler_exponential_8steps_g7_seed6.safetensors", "HeunDiscreteScheduler")]
    [InlineData("fewstep/small-sd15/euler_beta_8steps_g7_seed7.safetensors", "HeunDiscreteScheduler")]
    public void Other_schedulers_space_sigmas_as_euler_does(string file, string cls)
    {
        var info = V3Golden.Info(file);
        var expected = V3Golden.Load(file)["scheduler_sigmas"].data<float>().ToArray();
        var scheduler = SchedulerFactory.Create(cls, SchedulerConfig.Parse(info["scheduler"]!["config"]!.ToJsonString()));
        scheduler.SetTimesteps((int)V3Golden.Kwarg(info, "num_inference_steps"));
        Assert.Equal(expected, scheduler.Sigmas!.Distinct());
    }

    [Fact]
    public void Two_sigma_spacings_at_once_are_refused()
    {
        var config = SchedulerGolden.Sd14Config().With("use_karras_sigmas", true).With("use_beta_sigmas", true);
        var e = Assert.Throws<ArgumentException>(() => SchedulerFactory.Create("euler", config));
        Assert.Contains("only one of", e.Message);
    }

    /// <summary>scipy.stats.beta.ppf's defining property: I_x(a, b) at the returned x is p, symmetric for a = b.</summary>
    [Theory]
    [InlineData(0.1)]
    [InlineData(0.5)]
    [InlineData(0.857142857142857)]
    [InlineData(0.999)]
    public void Beta_ppf_inverts_the_regularized_incomplete_beta(double p)
    {
        double x = BetaDistribution.Ppf(p, 0.6, 0.6);
        Assert.Equal(p, BetaDistribution.RegularizedIncompleteBeta(x, 0.6, 0.6), 1e-14);
        Assert.Equal(1 - x, BetaDistribution.Ppf(1 - p, 0.6, 0.6), 1e-14);
    }
}
