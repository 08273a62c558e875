using SharpDiffusion.Pipelines;
using SharpDiffusion.Tests.Cli;

namespace SharpDiffusion.Tests.Sd3;

/// <summary>`generate --model &lt;SD3 folder&gt;` end to end, in process: the family comes from model_index.json and the
/// PNG is diffusers' StableDiffusion3Pipeline image; what SD3 cannot do fails in one line.</summary>
[Collection(ProcessWide.Settings)]
public class Sd3CommandTests
{
    static readonly string TinySd3 = Golden.Path("v3", "models", "tiny-sd3");

    [Fact]
    public void Generate_with_an_sd3_folder_writes_the_golden_png()
    {
        const string name = "flow_euler_96x128_seed11_6steps_g5";
        var kwargs = Sd3Golden.Info("tiny-sd3", name).GetProperty("kwargs");
        var options = Sd3Golden.Options(Sd3Golden.Info("tiny-sd3", name));
        using var dir = new TempDir();
        string output = dir.File("out.png");
        var (code, _, err) = GenerateCommandTests.Run("generate", "--model", TinySd3, "--prompt", options.Prompts[0],
            "--negative-prompt", options.NegativePrompts![0], "--seed", options.Seed!.Value.ToString(),
            "--steps", options.NumInferenceSteps.ToString(), "--guidance", kwargs.GetProperty("guidance_scale").GetRawText(),
            "--width", options.Width!.Value.ToString(), "--height", options.Height!.Value.ToString(), "--output", output);
        Assert.True(code == 0, err);
        Golden.AssertPngWithinOneLevel(output, Sd3Golden.File("tiny-sd3", name));
    }

    [Theory]
    [InlineData("--width", "100")]   // not a multiple of the VAE factor × patch (4 × 2 for the tiny model; 16 for SD3)
    [InlineData("--deep-cache", "2")]
    [InlineData("--prompt-syntax", "a1111")]
    public void What_sd3_cannot_do_fails_with_one_line(string option, string value)
    {
        using var dir = new TempDir();
        var (code, _, err) = GenerateCommandTests.Run("generate", "--model", TinySd3, "--prompt", "x", "--steps", "1", option, value, "--output", dir.File("out.png"));
        Assert.NotEqual(0, code);
        Assert.StartsWith("error: ", err);
        Assert.Single(err.TrimEnd('\n').Split('\n'));
        Assert.Empty(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void Size_multiple_is_the_vae_factor_times_the_patch()
    {
        var pipeline = Sd3Golden.Pipeline("tiny-sd3", withoutT5: false);
        Assert.Equal(pipeline.LatentFormat.SpatialFactor * 2, pipeline.SizeMultiple);
        var e = Assert.Throws<ArgumentException>(() => pipeline.Validate(new GenerationOptions { Prompts = ["x"], Width = 100, Height = 96 }));
        Assert.DoesNotContain('\n', e.Message);
    }
}
