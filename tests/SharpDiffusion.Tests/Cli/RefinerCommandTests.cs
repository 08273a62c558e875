using SharpDiffusion.Imaging;

namespace SharpDiffusion.Tests.Cli;

/// <summary>`generate --refiner DIR|FILE --refiner-switch-at X`: the SDXL base then the refiner, as golden v3
/// `refiner/tiny-sdxl` (diffusers' denoising_end 0.8 → denoising_start 0.8), and its bad input.</summary>
[Collection(ProcessWide.Settings)]
public class RefinerCommandTests
{
    static readonly string TinySdxl = Golden.Path("models", "tiny-sdxl");
    static readonly string Refiner = Golden.Path("v3", "models", "tiny-sdxl-refiner");

    static (int Code, string Out, string Err) Run(params string[] args) => GenerateCommandTests.Run(args);

    [Fact]
    public void Refiner_after_the_base_reproduces_the_golden_png_with_its_infotext()
    {
        using var dir = new TempDir();
        string output = dir.File("out.png");
        // The golden case's call: refiner/tiny-sdxl/base_denoising_end0.8_seed14 then refiner_denoising_start0.8_seed14.
        var (code, _, err) = Run("generate", "--model", TinySdxl, "--refiner", Refiner, "--refiner-switch-at", "0.8",
            "--prompt", "a mountain lake", "--negative-prompt", "fog", "--seed", "14", "--steps", "10", "--guidance", "6",
            "--width", "64", "--height", "64", "--scheduler", "EulerDiscreteScheduler", "--output", output);
        Assert.True(code == 0, err);
        Golden.AssertPngWithinOneLevel(output, "v3", "refiner", "tiny-sdxl", "refiner_denoising_start0.8_seed14.safetensors");
        string parameters = PngFile.ReadText(File.ReadAllBytes(output))["parameters"];
        Assert.Contains("Refiner: tiny-sdxl-refiner, Refiner switch at: 0.8", parameters);
    }

    [Fact]
    public void A_refiner_for_a_model_that_is_not_SDXL_and_a_switch_without_a_refiner_are_one_line_errors()
    {
        using var dir = new TempDir();
        string output = dir.File("out.png");
        var (code, _, err) = Run("generate", "--model", Golden.Path("models", "tiny-sd"), "--refiner", Refiner, "--prompt", "x",
            "--steps", "2", "--output", output);
        Assert.NotEqual(0, code);
        Assert.Contains("SDXL base models", err);
        Assert.Single(err.Trim().Split('\n'));
        Assert.False(File.Exists(output));
        (code, _, err) = Run("generate", "--model", TinySdxl, "--refiner-switch-at", "0.5", "--prompt", "x", "--output", output);
        Assert.NotEqual(0, code);
        Assert.Contains("--refiner", err);
        Assert.Single(err.Trim().Split('\n'));
    }
}
