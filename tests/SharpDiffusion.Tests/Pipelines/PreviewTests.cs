using SharpDiffusion.Imaging;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Schedulers;
using SharpDiffusion.Tests.Server;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Pipelines;

/// <summary>Live previews: the x̂₀ estimate per step (DenoisedEstimate) and the per-model latent→RGB map (LatentPreview).</summary>
public class PreviewTests
{
    const string Config = """{"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}""";

    /// <summary>x_t built the way each kind of scheduler holds it (DDPM scale for DDIM, x₀ + σε scaled by 1/√(σ²+1) for the σ
    /// samplers, at fractional timesteps) gives back x₀ from the true ε at every step.</summary>
    [Theory]
    [InlineData("DDIMScheduler")]
    [InlineData("EulerDiscreteScheduler")]
    [InlineData("LMSDiscreteScheduler")]
    public void TheTrueNoiseGivesBackTheCleanLatents(string schedulerName)
    {
        var scheduler = SchedulerFactory.Create(schedulerName, SchedulerConfig.Parse(Config));
        scheduler.SetTimesteps(12);
        var estimate = new DenoisedEstimate(scheduler);
        using var generator = new Generator(7);
        using var x0 = randn([1, 4, 8, 8], generator: generator);
        using var eps = randn([1, 4, 8, 8], generator: generator);
        for (int i = 0; i < scheduler.Timesteps.Count; i++)
        {
            float t = scheduler.Timesteps[i];
            using var noisy = scheduler.AddNoise(x0, eps, t);                 // what the loop holds at t
            // what the UNet sees: the scheduler's scale_model_input (1/√(σ²+1) for σ samplers; they allow one call per step)
            using var input = scheduler.Sigmas is { } sigmas ? noisy / Math.Sqrt(sigmas[i] * sigmas[i] + 1) : noisy.clone();
            using var predicted = estimate.EstimateClean(input, eps, t);
            double err = (predicted - x0).abs().max().item<float>();
            Assert.True(err < 2e-3, $"{schedulerName} t={t}: max |x̂₀ - x₀| = {err}");
        }
    }

    /// <summary>The Euler step to σ = 0 lands exactly on the model's x̂₀: the last preview is the final latents.</summary>
    [Fact]
    public void TheLastEstimateOfAnEulerRunIsItsResult()
    {
        var pipeline = PipelineParityTests.Pipeline(Path.Combine("models", "tiny-sd"));
        Tensor? last = null;
        int calls = 0;
        using var result = pipeline.Generate(new GenerationOptions
        {
            Prompts = ["a house"], NumInferenceSteps = 6, Seed = 3, Scheduler = "euler", Width = 64, Height = 64,
        }, onDenoised: (i, x0) => { calls++; last?.Dispose(); last = x0.clone().DetachFromDisposeScope(); });
        using (last)
        {
            Assert.Equal(6, calls);
            double err = (last! - result.Latents).abs().max().item<float>();
            Assert.True(err < 1e-4, $"max |x̂₀(last step) - final latents| = {err}");
        }
    }

    /// <summary>The fitted map previews the shipped model's latents of a picture it never saw far better than its mean colour does.</summary>
    [Fact]
    public void ThePreviewMapFitsTheModelsOwnLatentSpace()
    {
        using var pipeline = StableDiffusionPipeline.FromPretrained(Repo.ShippedModel);
        using var preview = LatentPreview.Fit(pipeline);
        using var scope = NewDisposeScope();
        using var generator = new Generator(123);
        var coarse = rand([1, 3, 3, 3], generator: generator) * 2 - 1;               // not the fit's seed or grid
        var image = nn.functional.interpolate(coarse, [64, 64], mode: InterpolationMode.Bilinear, align_corners: true);
        using var posterior = pipeline.Vae.Encode(image);
        var latents = posterior.Mean * pipeline.Vae.Config.ScalingFactor;              // [1, C, h, w]
        var picture = preview.ToImages(latents)[0];
        int factor = pipeline.VaeScaleFactor;
        Assert.Equal((64 / factor, 64 / factor), (picture.Width, picture.Height));
        var target = ((nn.functional.avg_pool2d(image, factor) + 1) / 2 * 255).permute(0, 2, 3, 1).reshape(-1);
        var got = tensor(picture.Rgb.Select(b => (float)b).ToArray());
        double error = (got - target).abs().mean().item<float>();
        double baseline = (target - target.mean()).abs().mean().item<float>();
        Assert.True(error < 0.5 * baseline, $"preview mean error {error:F1} levels vs {baseline:F1} for the mean colour");
    }
}
