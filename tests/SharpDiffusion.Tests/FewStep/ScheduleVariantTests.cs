using SharpDiffusion.Models;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Schedulers;
using SharpDiffusion.Tests.Schedulers;
using Xunit.Abstractions;

namespace SharpDiffusion.Tests.FewStep;

/// <summary>
/// Issue 25 item 1: A1111's SGM Uniform and Align Your Steps as σ schedules of the k-diffusion samplers, custom
/// sigmas= / timesteps= lists and --eta. The references are computed here from the published formulas over the
/// scheduler's own ᾱ table (A1111's sd_schedulers.py: sgm_uniform with k-diffusion's t_to_sigma, loglinear_interp).
/// </summary>
public class ScheduleVariantTests(ITestOutputHelper output)
{
    static SchedulerConfig Sd15() => SchedulerGolden.Sd14Config();

    /// <summary>k-diffusion's σ(t) of the training table in float64: exp of ln σ interpolated linearly in t.</summary>
    static double SigmaAt(double t, float[] alphasCumprod)
    {
        double LogSigma(int i) => Math.Log(Math.Sqrt((1 - (double)alphasCumprod[i]) / alphasCumprod[i]));
        int lo = (int)Math.Floor(t), hi = (int)Math.Ceiling(t);
        double w = t - lo;
        return Math.Exp((1 - w) * LogSigma(lo) + w * LogSigma(hi));
    }

    [Theory]
    [InlineData("euler_sgm_uniform", 1)]
    [InlineData("euler_sgm_uniform", 4)]
    [InlineData("euler_sgm_uniform", 7)]
    [InlineData("lms_sgm_uniform", 20)]
    public void Sgm_uniform_sigmas_follow_a1111s_formula(string name, int steps)
    {
        var scheduler = (SchedulerBase)SchedulerFactory.Create(name, Sd15());
        scheduler.SetTimesteps(steps);
        var ac = scheduler.NoiseSchedule.AlphasCumprod;
        // sgm_uniform: t from sigma_to_t(σ_max) = T-1 to sigma_to_t(σ_min) = 0 in n+1 even steps, the last dropped; then 0.
        double start = ac.Length - 1, end = 0;
        var expected = Enumerable.Range(0, steps).Select(i => SigmaAt(start + i * (end - start) / steps, ac)).Append(0).ToArray();
        var actual = scheduler.Sigmas!;
        Assert.Equal(steps + 1, actual.Count);
        double worst = expected.Zip(actual, (e, a) => Math.Abs(e - a) / Math.Max(e, 1e-3)).Max();
        output.WriteLine($"{name} {steps} steps: max relative |diff| {worst:E2}");
        Assert.True(worst < 2e-6, $"relative difference {worst:E3}");
        var expectedT = Enumerable.Range(0, steps).Select(i => start + i * (end - start) / steps).ToArray();
        Assert.True(expectedT.Zip(scheduler.Timesteps, (e, a) => Math.Abs(e - a)).Max() < 1e-3);
    }

    [Theory]
    [InlineData("sd15")]
    [InlineData("sdxl")]
    public void Ays_ten_steps_are_the_published_list_and_the_interpolation_is_the_identity(string model)
    {
        var published = model == "sdxl" ? AlignYourSteps.StableDiffusionXL : AlignYourSteps.StableDiffusion15;
        Assert.Equal(11, published.Count);
        Assert.Equal(published, AlignYourSteps.LogLinearInterp(published, 11).Select(s => Math.Round(s, 12)));
        var scheduler = SchedulerFactory.Create("euler_ays", Sd15().With(AlignYourSteps.ModelKey, model));
        scheduler.SetTimesteps(10);
        // The 10 published levels the sampler starts each step at, then 0 where the list's last level was.
        Assert.Equal(published.Take(10).Select(s => (float)s).Append(0f), scheduler.Sigmas!);
    }

    [Theory]
    [InlineData(4)]
    [InlineData(7)]
    [InlineData(25)]
    public void Ays_other_counts_interpolate_ln_sigma_linearly(int steps)
    {
        var published = AlignYourSteps.StableDiffusion15;
        var scheduler = SchedulerFactory.Create("euler_ays", Sd15());
        scheduler.SetTimesteps(steps);
        // loglinear_interp: the published levels sit at x = k/10; level j of n+1 sits at x = j/n.
        var expected = Enumerable.Range(0, steps).Select(j =>
        {
            double x = j / (double)steps * 10;
            int k = Math.Min((int)Math.Floor(x), 9);
            double w = x - k;
            return Math.Exp((1 - w) * Math.Log(published[k]) + w * Math.Log(published[k + 1]));
        }).ToArray();
        double worst = expected.Zip(scheduler.Sigmas!, (e, a) => Math.Abs(e - a) / e).Max();
        output.WriteLine($"AYS SD 1.5 {steps} steps: max relative |diff| {worst:E2}");
        Assert.True(worst < 1e-6, $"relative difference {worst:E3}");
        Assert.Equal(0f, scheduler.Sigmas![^1]);
        // The timesteps are those σ's on the training table (diffusers' _sigma_to_t).
        var schedule = ((SchedulerBase)scheduler).NoiseSchedule;
        Assert.Equal(scheduler.Sigmas!.Take(steps).Select(s => (float)SigmaMath.SigmaToT(s, schedule)), scheduler.Timesteps);
    }

    [Fact]
    public void Ays_picks_the_sdxl_list_from_sdxls_scheduler_config_and_refuses_flow_matching()
    {
        var xl = SchedulerFactory.Create("euler_ays", SchedulerConfig.Parse(StableDiffusionXL.SchedulerConfig));
        xl.SetTimesteps(10);
        Assert.Equal((float)AlignYourSteps.StableDiffusionXL[1], xl.Sigmas![1]);
        var flow = SchedulerConfig.Load(Golden.Path("v3", "models", "tiny-sd3", "scheduler", "scheduler_config.json"));
        var e = Assert.Throws<ArgumentException>(() => SchedulerFactory.Create("euler_ays", flow));
        Assert.Contains("SD 1.5 and SDXL only", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        var bad = Assert.Throws<ArgumentException>(() => SchedulerFactory.Create("euler_ays", Sd15().With(AlignYourSteps.ModelKey, "sd3")));
        Assert.Contains("ays_model 'sd3'", bad.Message);
    }

    [Fact]
    public void Custom_sigmas_are_used_as_given_with_their_timesteps()
    {
        double[] given = [14.6, 6.5, 2.0, 0.5, 0];
        var options = new Dictionary<string, object?> { ["sigmas"] = given };
        var scheduler = SchedulerFactory.Create("euler", Sd15(), options);
        scheduler.SetTimesteps(4);
        Assert.Equal(given.Select(s => (float)s), scheduler.Sigmas!);
        var schedule = ((SchedulerBase)scheduler).NoiseSchedule;
        Assert.Equal(given.Take(4).Select(s => (float)SigmaMath.SigmaToT((float)s, schedule)), scheduler.Timesteps);
        // The command line gives "14.6,6.5,2,0.5,0" as a string: the same schedule.
        var fromText = SchedulerFactory.Create("euler", Sd15(), new Dictionary<string, object?> { ["sigmas"] = "14.6, 6.5, 2, 0.5, 0" });
        fromText.SetTimesteps(4);
        Assert.Equal(scheduler.Sigmas!, fromText.Sigmas!);
    }

    [Fact]
    public void Custom_timesteps_interpolate_sigma_and_end_at_zero()
    {
        double[] given = [999, 759, 499, 259];
        var scheduler = SchedulerFactory.Create("euler", Sd15(), new Dictionary<string, object?> { ["timesteps"] = given });
        scheduler.SetTimesteps(4);
        var trainSigmas = ((SchedulerBase)scheduler).NoiseSchedule.Sigmas;
        Assert.Equal(given.Select(t => (float)t), scheduler.Timesteps);
        Assert.Equal(given.Select(t => trainSigmas[(int)t]).Append(0f), scheduler.Sigmas!);
    }

    [Theory]
    [InlineData("sigmas", new[] { 14.6, 6.5, 6.5, 0 }, "strictly decreasing")]
    [InlineData("sigmas", new[] { 1.0, 2.0, 0 }, "strictly decreasing")]
    [InlineData("timesteps", new[] { 500.0, 999 }, "strictly decreasing")]
    [InlineData("sigmas", new[] { 1.0, -1 }, ">= 0")]
    public void Custom_lists_that_do_not_decrease_are_refused_in_one_line(string key, double[] values, string expected)
    {
        var e = Assert.Throws<ArgumentException>(() => SchedulerFactory.Create("euler", Sd15(), new Dictionary<string, object?> { [key] = values }));
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void A_custom_list_for_another_step_count_names_the_fix()
    {
        var scheduler = SchedulerFactory.Create("euler", Sd15(), new Dictionary<string, object?> { ["sigmas"] = new[] { 10.0, 1, 0 } });
        var e = Assert.Throws<ArgumentException>(() => scheduler.SetTimesteps(20));
        Assert.Contains("--steps 2", e.Message);
        var both = Assert.Throws<ArgumentException>(() => SchedulerFactory.Create("euler_karras", Sd15(), new Dictionary<string, object?> { ["sigmas"] = new[] { 10.0, 1, 0 } }));
        Assert.Contains("use_karras_sigmas", both.Message);
    }

    [Fact]
    public void Eta_reaches_ddim_and_tcd_and_others_refuse_it_by_name()
    {
        var options = new GenerationOptions { Prompts = ["x"], Eta = 0.7, SchedulerOptions = new Dictionary<string, object?> { ["prediction_type"] = "epsilon" } };
        var ddim = (DDIMScheduler)SchedulerFactory.Create("ddim", Sd15(), options.SchedulerOptions);
        Assert.Equal(0.7f, ddim.Eta);
        var tcd = (TCDScheduler)SchedulerFactory.Create("tcd", Sd15(), options.SchedulerOptions);
        Assert.Equal(0.7f, tcd.Eta);
        Assert.Equal(0.3f, ((TCDScheduler)SchedulerFactory.Create("tcd", Sd15())).Eta);
        Assert.Equal(0f, ((DDIMScheduler)SchedulerFactory.Create("ddim", Sd15())).Eta);
        var e = Assert.Throws<ArgumentException>(() => SchedulerFactory.Create("euler", Sd15(), options.SchedulerOptions));
        Assert.StartsWith("--eta: the euler scheduler has no eta", e.Message);
        Assert.Throws<ArgumentException>(() => new GenerationOptions { Prompts = ["x"], Eta = -1 }.Validate());
    }
}
