using SharpDiffusion.Imaging;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Tests.Cli;
using SharpDiffusion.Tests.Pipelines;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.ControlNet;

/// <summary>ControlNet beyond the single-unit text-to-image goldens: several units summed, img2img and inpainting through
/// the same denoiser run, and the CLI's --controlnet options.</summary>
[Collection(ProcessWide.Settings)]
public class ControlNetTaskTests(ITestOutputHelper output)
{
    const string EulerCase = "controlnet/pipelines/euler_scale1.0_seed42_12steps_g7.5.safetensors";
    static readonly string ControlPng = Golden.Path("controlnet", "control_edges_64x64.png");

    static ControlNetUnit Unit(double scale) => new()
    {
        Model = ControlNetParityTests.Model(ControlNetParityTests.Sd15ControlNet),
        Image = ImageFile.Load(ControlPng),
        Scale = scale,
    };

    [Fact]
    public void TwoUnitsAtHalfScaleGiveDiffusersSingleUnitRun()
    {
        // r·0.5 + r·0.5 = r exactly in floating point: two half-scale units are the golden scale-1 run.
        var info = GoldenManifest.Info(EulerCase);
        var golden = Golden.Load(EulerCase.Split('/'));
        var options = PipelineParityTests.Options(info) with { Width = 64, Height = 64, ControlNets = [Unit(0.5), Unit(0.5)] };
        output.WriteLine(PipelineParityTests.GenerateAndCompare(PipelineParityTests.Pipeline("models/small-sd15"), options, golden));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ImageTasksRunTheControlNetInsideTheDenoiser(bool inpaint)
    {
        var pipeline = PipelineParityTests.Pipeline("models/small-sd15");
        var picture = ImageFile.Load(Golden.Path("controlnet", "pipelines", "ddim_scale0.6_start0.2_end0.8_seed7_10steps_g7.5_0.png"));
        var mask = new RgbImage(64, 64, Enumerable.Range(0, 64 * 64 * 3).Select(i => (byte)(i / 3 % 64 < 32 ? 255 : 0)).ToArray());
        var options = new GenerationOptions
        {
            Prompts = ["a small house under the sun"],
            NumInferenceSteps = 6,
            Strength = 0.7,
            Seed = 3,
            Image = picture,
            MaskImage = inpaint ? mask : null,
        };
        Assert.Equal(inpaint ? GenerationTask.Inpainting : GenerationTask.ImageToImage, options.Task);
        using var plain = pipeline.Generate(options);
        using var zero = pipeline.Generate(options with { ControlNets = [Unit(0.0)] });
        using var steered = pipeline.Generate(options with { ControlNets = [Unit(1.0)] });
        // Zero residuals leave the run as it was (to rounding); full ones change the picture.
        double zeroDiff = Golden.MaxAbsDiff(zero.ImageFloat, plain.ImageFloat), steeredDiff = Golden.MaxAbsDiff(steered.ImageFloat, plain.ImageFloat);
        output.WriteLine($"inpaint {inpaint}: scale 0 vs none {zeroDiff:E2}, scale 1 vs none {steeredDiff:E2}");
        Assert.True(zeroDiff < 1e-4, $"scale 0 changed the image by {zeroDiff}");
        Assert.True(steeredDiff > 1e-3, $"scale 1 changed the image by only {steeredDiff}");
    }

    [Fact]
    public void CliControlNetReproducesTheGoldenPng()
    {
        using var dir = new TempDir();
        string png = dir.File("out.png");
        var (code, _, err) = GenerateCommandTests.Run("generate", "--model", Golden.Path("models", "small-sd15"),
            "--prompt", "a photograph of an astronaut riding a horse", "--negative-prompt", "blurry, low quality",
            "--seed", "42", "--steps", "12", "--guidance", "7.5", "--scheduler", "EulerDiscreteScheduler",
            "--controlnet", Golden.Path("models", "tiny-controlnet-small-sd15"), "--control-image", ControlPng, "--output", png);
        Assert.True(code == 0, err);
        Golden.AssertPngWithinOneLevel(png, EulerCase.Split('/'));
    }

    [Fact]
    public void CliRefusesControlOptionsWithoutAControlNet()
    {
        var (code, _, err) = GenerateCommandTests.Run("generate", "--model", Golden.Path("models", "small-sd15"), "--prompt", "x",
            "--control-image", ControlPng);
        Assert.NotEqual(0, code);
        Assert.Contains("--controlnet", err);
    }
}
