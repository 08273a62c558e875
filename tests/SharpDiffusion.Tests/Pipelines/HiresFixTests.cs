using System.Text.Json;
using SharpDiffusion.Imaging;
using SharpDiffusion.Loading;
using SharpDiffusion.Pipelines;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Pipelines;

/// <summary>
/// The hires fix (<see cref="HiresFix"/>) against golden v3 `hires/small-sd15`: diffusers' txt2img with output_type
/// "latent", the latents interpolated ×2 as A1111's latent upscalers do, then img2img from them with a new generator of
/// the same seed. Every step of both passes and the picture are compared; then the picture upscalers, the infotext and
/// what is refused before any work.
/// </summary>
public class HiresFixTests(ITestOutputHelper output)
{
    static readonly string[] Folder = ["v3", "hires", "small-sd15"];
    const string FirstPass = "first_pass_64x64_seed17_10steps_g7";

    static JsonElement Info(string name)
    {
        using var file = SafetensorsFile.Open(Golden.Path([.. Folder, name + ".safetensors"]));
        return JsonDocument.Parse(file.Metadata["info"]).RootElement.Clone();
    }

    static StableDiffusionPipeline Pipeline => PipelineParityTests.Pipeline("models/small-sd15");

    [Theory]
    [InlineData("second_pass_bilinear_x2_s0.55_seed17", "Latent")]
    [InlineData("second_pass_nearest-exact_x2_s0.55_seed17", "Latent (nearest-exact)")]
    [InlineData("second_pass_bicubic_aa_x2_s0.55_seed17", "Latent (bicubic antialiased)")]
    public void Latent_hires_fix_matches_diffusers_step_by_step(string secondPass, string upscaler)
    {
        var first = Golden.Load([.. Folder, FirstPass + ".safetensors"]);
        var second = Golden.Load([.. Folder, secondPass + ".safetensors"]);
        var secondInfo = Info(secondPass).GetProperty("kwargs");
        var options = PipelineParityTests.Options(Info(FirstPass)) with
        {
            Hires = new HiresFixOptions { Scale = 2, Upscaler = upscaler, Strength = secondInfo.GetProperty("strength").GetDouble() },
        };
        Assert.Equal(options.NumInferenceSteps, secondInfo.GetProperty("num_inference_steps").GetInt32());

        var firstSteps = first["latents_steps"];
        var secondSteps = second["latents_steps"];
        int call = 0;
        double worst = 0;
        using var result = Pipeline.Generate(options, onStepEnd: (i, latents) =>
        {
            bool inFirst = call++ < firstSteps.shape[0];
            var expected = inFirst ? firstSteps[i] : secondSteps[i];
            double diff = Golden.AssertClose(latents, expected, rel: 1e-3, abs: 1e-4, what: $"{(inFirst ? "first" : "second")} pass, latents after step {i}");
            worst = Math.Max(worst, diff / Golden.MaxAbs(expected));
        });
        Assert.Equal(firstSteps.shape[0] + secondSteps.shape[0], call);
        double imageDiff = Golden.MaxAbsDiff(result.ImageFloat, second["image_float"]);
        Assert.True(imageDiff <= 1e-3, $"image_float max |diff| {imageDiff:E3}");
        using var bytes = ImageTensors.ToUInt8(result.ImageFloat);
        using var levels = (bytes.to(ScalarType.Int32) - second["image_uint8"].to(ScalarType.Int32)).abs();
        Assert.True(levels.max().item<int>() <= 1, $"uint8 image differs by {levels.max().item<int>()} levels");
        Assert.Equal((64, 64), result.FirstPassSize);
        Assert.Equal((128, 128), (result.Width, result.Height));
        output.WriteLine($"{secondPass}: {call} steps, latents max rel diff {worst:E2}, image_float max |diff| {imageDiff:E2}");
    }

    [Theory]
    [InlineData("Lanczos")]
    [InlineData("Nearest")]
    public void Picture_upscalers_decode_resize_and_encode_between_the_passes(string upscaler)
    {
        var options = PipelineParityTests.Options(Info(FirstPass)) with
        {
            NumInferenceSteps = 4,
            Hires = new HiresFixOptions { ResizeWidth = 96, ResizeHeight = 80, Upscaler = upscaler, Strength = 0.5, Steps = 4 },
        };
        using var result = Pipeline.Generate(options);
        Assert.Equal((96, 80), (result.Width, result.Height));
        Assert.Single(result.Images);
        string info = ImageOutput.InfoTextFor(options, result, result.Images[0], "small-sd15");
        Assert.Contains("Size: 64x64", info);
        Assert.Contains($"Denoising strength: 0.5, Hires resize: 96x80, Hires steps: 4, Hires upscaler: {upscaler}", info);
    }

    [Fact]
    public void Lanczos_resize_keeps_a_flat_picture_flat_and_follows_PILs_kernel_on_a_step()
    {
        var flat = new RgbImage(5, 3, Enumerable.Repeat((byte)77, 45).ToArray());
        Assert.All(PictureResize.Lanczos(flat, 11, 7).Rgb, v => Assert.Equal(77, v));
        // A black/white step doubled: Lanczos overshoots on both sides of the edge (ringing), nearest does not.
        var step = new RgbImage(8, 1, Enumerable.Range(0, 8).SelectMany(x => Enumerable.Repeat((byte)(x < 4 ? 50 : 200), 3)).ToArray());
        var lanczos = PictureResize.Lanczos(step, 16, 1).Rgb.Where((_, i) => i % 3 == 0).ToArray();
        var nearest = PictureResize.Nearest(step, 16, 1).Rgb.Where((_, i) => i % 3 == 0).ToArray();
        Assert.Equal(Enumerable.Range(0, 16).Select(x => (byte)(x < 8 ? 50 : 200)), nearest);
        Assert.True(lanczos.Min() < 50 && lanczos.Max() > 200, $"ringing expected: {string.Join(",", lanczos)}");
        Assert.Equal(50, lanczos[0]);
        Assert.Equal(200, lanczos[15]);
    }

    [Theory]
    [InlineData("Latent (cubic)", 2, 0.5, "Unknown hires upscaler")]
    [InlineData("Latent", 0.5, 0.5, "hires scale")]
    [InlineData("Latent", 2, 0, "hires denoising strength")]
    public void Bad_hires_options_are_refused_before_the_first_pass(string upscaler, double scale, double strength, string expected)
    {
        var options = new GenerationOptions
        {
            Prompts = ["x"], Width = 64, Height = 64, NumInferenceSteps = 2,
            Hires = new HiresFixOptions { Upscaler = upscaler, Scale = scale, Strength = strength },
        };
        var e = Assert.Throws<ArgumentException>(() => Pipeline.Generate(options));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void A_hires_pass_that_runs_no_step_and_hires_with_img2img_are_refused()
    {
        var tooWeak = new GenerationOptions { Prompts = ["x"], Width = 64, Height = 64, NumInferenceSteps = 2, Hires = new HiresFixOptions { Strength = 0.2 } };
        Assert.Contains("runs no step", Assert.Throws<ArgumentException>(() => Pipeline.Generate(tooWeak)).Message);
        var img2img = tooWeak with { Image = new RgbImage(64, 64, new byte[64 * 64 * 3]), Hires = new HiresFixOptions() };
        Assert.Contains("second pass of text-to-image", Assert.Throws<ArgumentException>(img2img.Validate).Message);
    }
}
