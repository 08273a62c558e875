using System.Text.Json.Nodes;
using SharpDiffusion.Schedulers;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Schedulers;

/// <summary>
/// Scheduler behaviour the schedulers/ files do not cover, replayed from pipeline goldens with their stored UNet
/// outputs: v-prediction and trailing spacing (sd2/pipelines), and img2img's add_noise, start in the middle of
/// the schedule and continued generator stream (img2img/). Only the scheduler runs; CFG (and guidance_rescale)
/// is recomputed from the stored uncond/cond rows as the pipeline does.
/// </summary>
public class PipelineScheduleReplayTests(ITestOutputHelper output)
{
    static JsonNode Info(string file) => SchedulerGolden.ReadPythonJson("manifest.json")["files"]![file]!["info"]!;

    /// <summary>The pipeline's scheduler: its class and the config diffusers reported (with _use_default_values).</summary>
    static IScheduler SchedulerOf(JsonNode info) =>
        SchedulerFactory.Create(info["scheduler"]!["class"]!.GetValue<string>(),
            SchedulerConfig.Parse(info["scheduler"]!["config"]!.ToJsonString()));

    /// <summary>uncond + g·(cond - uncond), then guidance_rescale: r·cfg·std(cond)/std(cfg) + (1-r)·cfg.</summary>
    static Tensor Guided(Tensor unetOutput, double guidance, double rescale)
    {
        var uncond = unetOutput[0..1];
        var cond = unetOutput[1..2];
        var cfg = uncond + guidance * (cond - uncond);
        if (rescale <= 0)
            return cfg;
        long[] dims = [1, 2, 3];
        var rescaled = cfg * (cond.std(dims, unbiased: true, keepdim: true) / cfg.std(dims, unbiased: true, keepdim: true));
        return rescale * rescaled + (1 - rescale) * cfg;
    }

    double CheckRelative(Tensor actual, Tensor expected, string what)
    {
        double rel = Golden.MaxAbsDiff(actual, expected) / Golden.MaxAbs(expected);
        Assert.True(rel <= SchedulerGolden.Tolerance, $"{what}: max |diff| / max |expected| = {rel:E3}");
        return rel;
    }

    [Theory]
    [InlineData("ddim_vpred_seed42_20steps_g7.5")]
    [InlineData("euler_vpred_seed42_20steps_g7.5")]
    [InlineData("ddim_vpred_rescale0.7_seed42_20steps_g7.5")]
    [InlineData("euler_vpred_rescale0.7_trailing_seed7_12steps_g9")]
    public void Sd2_v_prediction_pipeline_latents(string name)
    {
        string file = $"sd2/pipelines/{name}.safetensors";
        var info = Info(file);
        var g = Golden.Load("sd2", "pipelines", name + ".safetensors");
        var scheduler = SchedulerOf(info);
        var kwargs = info["kwargs"]!;
        double guidance = kwargs["guidance_scale"]!.GetValue<double>();
        double rescale = kwargs["guidance_rescale"]?.GetValue<double>() ?? 0;

        scheduler.SetTimesteps(kwargs["num_inference_steps"]!.GetValue<int>());
        Assert.Equal(g["scheduler_timesteps_full"].to(ScalarType.Float32).data<float>().ToArray(), scheduler.Timesteps);
        Assert.Equal(info["init_noise_sigma"]!.GetValue<double>(), scheduler.InitNoiseSigma, 1e-6 * scheduler.InitNoiseSigma);

        var latents = g["latents_init"];
        double worst = CheckRelative(scheduler.ScaleModelInput(latents, scheduler.Timesteps[0]), g["unet_input_step0"][0..1], "unet_input_step0");
        using var generator = new Generator(0); // Euler draws (unused) churn noise; its values do not matter here
        for (int i = 0; i < scheduler.Timesteps.Count; i++)
        {
            float t = scheduler.Timesteps[i];
            latents = scheduler.Step(Guided(g["unet_outputs"][i], guidance, rescale), t, latents, generator);
            worst = Math.Max(worst, CheckRelative(latents, g["latents_steps"][i], $"latents_steps[{i}] (t={t})"));
        }
        output.WriteLine($"{name}: max |diff| / max |expected| = {worst:E2}");
    }

    [Theory]
    [InlineData("lms_s0.75_seed42_20steps_g7.5")]
    [InlineData("lms_s0.3_seed42_20steps_g7.5")]
    [InlineData("ddim_s0.75_seed42_20steps_g7.5")]
    [InlineData("ddim_s0.3_seed42_20steps_g7.5")]
    [InlineData("euler_ancestral_s0.75_seed42_20steps_g7.5")]
    [InlineData("euler_ancestral_s0.3_seed42_20steps_g7.5")]
    public void Img2img_add_noise_and_steps_from_the_middle_of_the_schedule(string name)
    {
        string file = $"img2img/tiny-sd/{name}.safetensors";
        var info = Info(file);
        var g = Golden.Load("img2img", "tiny-sd", name + ".safetensors");
        var scheduler = SchedulerOf(info);
        var kwargs = info["kwargs"]!;
        double guidance = kwargs["guidance_scale"]!.GetValue<double>();
        scheduler.SetTimesteps(kwargs["num_inference_steps"]!.GetValue<int>());
        Assert.Equal(g["scheduler_timesteps_full"].to(ScalarType.Float32).data<float>().ToArray(), scheduler.Timesteps);

        // The pipeline's generator: torch.manual_seed(seed), then the VAE sample and the noise were drawn from it.
        long seed = long.Parse(System.Text.RegularExpressions.Regex.Match(info["generator"]!.GetValue<string>(), @"manual_seed\((\d+)\)").Groups[1].Value);
        using var generator = new Generator((ulong)seed);
        Assert.True(Golden.MaxAbsDiff(randn(g["rng_0_vae"].shape, generator: generator), g["rng_0_vae"]) <= 1e-6);
        var noise = randn(g["rng_1_pipeline_stable_diffusion_img2img"].shape, generator: generator);
        Assert.True(Golden.MaxAbsDiff(noise, g["rng_1_pipeline_stable_diffusion_img2img"]) <= 1e-6);

        var timesteps = g["timesteps_used"].to(ScalarType.Float32).data<float>().ToArray();
        var latents = scheduler.AddNoise(g["init_latents_clean"], noise, timesteps[0]);
        double worst = CheckRelative(latents, g["latents_init"], "latents_init = add_noise");

        var unetOutputs = g.TryGetValue("unet_outputs", out var all) ? all : g["unet_output_step0"].unsqueeze(0);
        for (int i = 0; i < unetOutputs.shape[0]; i++)
        {
            latents = scheduler.Step(Guided(unetOutputs[i], guidance, 0), timesteps[i], latents, generator);
            worst = Math.Max(worst, CheckRelative(latents, g["latents_steps"][i], $"latents_steps[{i}] (t={timesteps[i]})"));
        }
        output.WriteLine($"{name}: {unetOutputs.shape[0]} step(s), max |diff| / max |expected| = {worst:E2}");
    }
}
