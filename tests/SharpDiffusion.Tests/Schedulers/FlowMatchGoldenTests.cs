using SharpDiffusion.Schedulers;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Schedulers;

/// <summary>
/// FlowMatchEulerDiscreteScheduler against golden/v3/sd3 and flux (issue 21 item 3): the schedule of every pipeline case
/// (SD3: the config's fixed shift; Flux: the pipeline's σ's linspace(1, 1/n, n) and, for dev, μ from the packed token
/// count), and the first step, the one whose transformer output the cases keep.
/// </summary>
public class FlowMatchGoldenTests(ITestOutputHelper output)
{
    public static TheoryData<string> Cases()
    {
        var data = V3Golden.Cases("sd3/", "scheduler_sigmas");
        foreach (var file in V3Golden.Cases("flux/", "scheduler_sigmas"))
            data.Add(file);
        return data;
    }

    static bool IsFlux(string file) => file.StartsWith("flux/", StringComparison.Ordinal);

    /// <summary>What the pipeline passes to set_timesteps: nothing more for SD3; Flux's σ's and μ (image_seq_len = the
    /// packed latents' length, [steps, B, seq, 64] in latents_steps).</summary>
    static FlowMatchEulerDiscreteScheduler Scheduled(string file, out Dictionary<string, Tensor> g)
    {
        var info = V3Golden.Info(file);
        g = V3Golden.Load(file);
        var scheduler = Assert.IsType<FlowMatchEulerDiscreteScheduler>(V3Golden.Scheduler(info));
        int n = (int)V3Golden.Kwarg(info, "num_inference_steps");
        if (IsFlux(file))
            scheduler.SetTimesteps(n, new TimestepOptions
            {
                Sigmas = FlowMatchEulerDiscreteScheduler.FluxSigmas(n),
                Mu = scheduler.Mu(g["latents_steps"].shape[2]),
            });
        else
            scheduler.SetTimesteps(n);
        return scheduler;
    }

    [Theory, MemberData(nameof(Cases))]
    public void Schedule_matches_diffusers(string file)
    {
        var scheduler = Scheduled(file, out var g);
        double timestepDiff = V3Golden.MaxAbsDiff(scheduler.Timesteps, g["scheduler_timesteps"]);
        double sigmaDiff = V3Golden.MaxAbsDiff(scheduler.Sigmas!, g["scheduler_sigmas"]);
        Assert.True(timestepDiff <= 1e-6 * 1000, $"timesteps differ by {timestepDiff:E3}");
        Assert.True(sigmaDiff <= 1e-6, $"sigmas differ by {sigmaDiff:E3}");

        // The transformer sees the timesteps from the strength cut on (img2img), Flux's divided by 1000.
        var called = g["denoiser_timesteps"].data<float>().ToArray();
        var expected = scheduler.Timesteps.Skip(scheduler.Timesteps.Count - called.Length).Select(t => IsFlux(file) ? t / 1000f : t);
        Assert.Equal(expected, called);
        output.WriteLine($"{file}: timesteps max |diff| {timestepDiff:E2}, sigmas max |diff| {sigmaDiff:E2}");
    }

    /// <summary>Text-to-image cases start from the pipeline's first draw (Flux packs it into 2×2 patches); the first
    /// step from the stored transformer output (CFG recomputed for SD3) must give latents_steps[0].</summary>
    [Theory, MemberData(nameof(Cases))]
    public void First_step_from_the_stored_transformer_output(string file)
    {
        if (file.Contains("/img2img_"))
            return; // its start is the VAE-encoded picture, which the case does not keep: see Scale_noise_is_the_flow_interpolation
        var scheduler = Scheduled(file, out var g);
        var info = V3Golden.Info(file);
        var latents = g["rng_0"];                                           // [B, 16, H, W]
        if (IsFlux(file))
        {
            long b = latents.shape[0], c = latents.shape[1], h = latents.shape[2], w = latents.shape[3];
            latents = latents.view(b, c, h / 2, 2, w / 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, h / 2 * (w / 2), c * 4);   // [B, HW/4, 4C]
        }
        float t = scheduler.Timesteps[0];
        using var scaled = scheduler.ScaleModelInput(latents, t);
        var modelOutput = IsFlux(file) ? g["denoiser_output_call0"] : V3Golden.Guided(g["denoiser_output_call0"], V3Golden.Kwarg(info, "guidance_scale"));
        var next = scheduler.Step(modelOutput, t, scaled);
        double rel = V3Golden.Relative(next, g["latents_steps"][0], SchedulerGolden.Tolerance, "latents_steps[0]");
        output.WriteLine($"{file}: step 0 max |diff| / max |expected| {rel:E2} (max |diff| {Golden.MaxAbsDiff(next, g["latents_steps"][0]):E2})");
    }

    /// <summary>img2img's start, diffusers' scale_noise: σ·ε + (1-σ)·x_0 at the first timestep kept, on the golden σ's.</summary>
    [Fact]
    public void Scale_noise_is_the_flow_interpolation()
    {
        const string file = "sd3/tiny-sd3/img2img_s0.6_96x96_seed13_10steps_g5.safetensors";
        var scheduler = Scheduled(file, out var g);
        int start = scheduler.Timesteps.Count - (int)g["denoiser_timesteps"].shape[0];
        float sigma = g["scheduler_sigmas"][start].item<float>();
        using var generator = new Generator(13);
        var x0 = randn([1, 16, 4, 4], generator: generator);
        var noise = randn([1, 16, 4, 4], generator: generator);
        var noisy = scheduler.AddNoise(x0, noise, scheduler.Timesteps[start]);
        Assert.True(Golden.MaxAbsDiff(noisy, sigma * noise + (1f - sigma) * x0) == 0);
    }

    [Fact]
    public void Dynamic_shifting_without_mu_is_refused_in_one_line()
    {
        var config = SchedulerConfig.Parse("""{"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 3.0, "use_dynamic_shifting": true}""");
        var scheduler = SchedulerFactory.FromConfig(config);
        var e = Assert.Throws<ArgumentException>(() => scheduler.SetTimesteps(4));
        Assert.Contains("use_dynamic_shifting", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Schedulers_without_flow_options_refuse_mu()
    {
        var scheduler = SchedulerFactory.Create("euler", SchedulerGolden.Sd14Config());
        Assert.Throws<ArgumentException>(() => scheduler.SetTimesteps(4, new TimestepOptions { Mu = 1.0 }));
    }
}
