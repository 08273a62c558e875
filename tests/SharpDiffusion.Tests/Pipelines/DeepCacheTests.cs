using SharpDiffusion.Conditioning;
using SharpDiffusion.Models.UNet;
using SharpDiffusion.Pipelines;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Pipelines;

/// <summary>
/// DeepCache (GenerationOptions.DeepCacheInterval, `--deep-cache N`): the shallow path is wired as the full pass is (on
/// the features of the same step it gives the same output), and what it costs in fidelity on diffusers' golden
/// pipeline cases, as PSNR of the uint8 image against diffusers' full computation.
/// </summary>
public class DeepCacheTests(ITestOutputHelper output)
{
    [Fact]
    public void The_shallow_path_on_the_features_of_the_same_step_is_the_full_pass()
    {
        var pipeline = PipelineParityTests.Pipeline("models/tiny-sd");
        using var _ = inference_mode();
        using var generator = new Generator(7);
        using var sample = randn([2, 4, 16, 16], generator: generator);
        using var text = pipeline.EncodePrompt(["a photo of a cat", "a drawing of a dog"]);
        using var conditioning = new TextConditioning(text);
        using var cache = new DeepFeatureCache(3);
        Assert.False(cache.CanReuse(0));
        using var full = pipeline.Unet.Forward(sample, 500f, conditioning, cache);
        Assert.True(cache.CanReuse(1) && cache.CanReuse(2) && !cache.CanReuse(3));
        using var shallow = pipeline.Unet.Forward(sample, 500f, conditioning, cache, reuse: true);
        using var plain = pipeline.Unet.Forward(sample, 500f, conditioning);
        Golden.AssertClose(full, plain, rel: 0, abs: 0, what: "a full pass that fills the cache");
        Golden.AssertClose(shallow, full, rel: 1e-5, abs: 1e-6, what: "the shallow path on the same step's features");
    }

    [Fact]
    public void An_interval_outside_1_to_20_is_a_one_line_error()
    {
        var e = Assert.Throws<ArgumentException>(() => new GenerationOptions { Prompts = ["x"], DeepCacheInterval = 0 }.Validate());
        Assert.Contains("DeepCache interval", e.Message);
        Assert.Throws<ArgumentException>(() => new GenerationOptions { Prompts = ["x"], DeepCacheInterval = 21 }.Validate());
    }

    /// <summary>PSNR (dB) of the uint8 image against diffusers' (the full computation) with a full pass every 3 steps, on
    /// four golden cases of three models and four schedulers (every case at intervals 2, 3, 5: the table in the README's
    /// speed section, 33 dB at worst, for N = 5).</summary>
    [Theory]
    [InlineData("pipelines/tiny-sd/pndm_default_seed42_20steps_g7.5.safetensors")]
    [InlineData("pipelines/tiny-sd/lms_batch2_seed42_20steps_g8.safetensors")]
    [InlineData("pipelines/small-sd15/ddim_negative_seed42_20steps_g7.5.safetensors")]
    [InlineData("sd2/pipelines/euler_vpred_rescale0.7_trailing_seed7_12steps_g9.safetensors")]
    public void On_golden_pipeline_cases_the_picture_stays_close_to_the_full_computation(string file)
    {
        var info = GoldenManifest.Info(file);
        var golden = Golden.Load(file.Split('/'));
        var pipeline = PipelineParityTests.Pipeline(info.GetProperty("model").GetString()!);
        var options = PipelineParityTests.Options(info) with { DeepCacheInterval = 3 };
        using var result = pipeline.Generate(options);
        using var bytes = ImageTensors.ToUInt8(result.ImageFloat);
        double psnr = Psnr(bytes, golden["image_uint8"]);
        output.WriteLine($"{file}, a full pass every 3 steps: {psnr:F1} dB from diffusers' full computation");
        Assert.True(psnr >= 30, $"{psnr:F1} dB: DeepCache drifted far from the full computation");
        Assert.True(psnr < 60, $"{psnr:F1} dB: the cache was not used (the image is the full computation's)");
    }

    static double Psnr(Tensor a, Tensor b)
    {
        using var diff = a.to(ScalarType.Float64) - b.to(ScalarType.Float64);
        double mse = diff.square().mean().item<double>();
        return mse == 0 ? 99 : 10 * Math.Log10(255.0 * 255.0 / mse);
    }
}
