using SharpDiffusion.Imaging;
using SharpDiffusion.Imaging.ControlPreprocessors;
using SharpDiffusion.Tests.Cli;
using SharpDiffusion.Tests.Server;
using Xunit.Abstractions;

namespace SharpDiffusion.Tests.ControlNet;

/// <summary>`generate --control-preprocess`: the map ControlPreprocessor makes at the picture's size is what the run
/// uses (the same pixels as passing that map ready-made), and the PNG carries sd-webui-controlnet's "ControlNet 0" entry.</summary>
[Collection(ProcessWide.Settings)]
public class ControlPreprocessCliTests(ITestOutputHelper output)
{
    static readonly string Photo = Golden.Path("img2img", "init_64x64.png");
    static readonly string ControlNetFolder = Golden.Path("models", "tiny-controlnet-small-sd15");

    static string[] Args(string png, string control, params string[] more) =>
    [
        "generate", "--model", Golden.Path("models", "small-sd15"), "--prompt", "a small house", "--seed", "9", "--steps", "3",
        "--controlnet", ControlNetFolder, "--control-image", control, "--output", png, .. more,
    ];

    [Fact]
    public void Canny_preprocessing_equals_the_ready_made_map_and_is_written_to_the_infotext()
    {
        using var dir = new TempDir();
        var photo = ImageFile.Load(Photo);
        var map = ControlPreprocessor.Canny.RunAtOwnSize(photo);
        File.WriteAllBytes(dir.File("map.png"), PngFile.Encode(map.Width, map.Height, map.Rgb));

        var (code, _, err) = GenerateCommandTests.Run(Args(dir.File("pre.png"), Photo, "--control-preprocess", "canny", "--control-scale", "0.8"));
        Assert.True(code == 0, err);
        (code, _, err) = GenerateCommandTests.Run(Args(dir.File("ready.png"), dir.File("map.png"), "--control-scale", "0.8"));
        Assert.True(code == 0, err);
        var pre = ImageFile.Load(dir.File("pre.png"));
        var ready = ImageFile.Load(dir.File("ready.png"));
        output.WriteLine($"preprocessed vs ready-made map: max abs difference {pre.Rgb.Zip(ready.Rgb, (a, b) => Math.Abs(a - b)).Max()} levels");
        Assert.Equal(ready.Rgb, pre.Rgb);

        string parameters = Api.Parameters(File.ReadAllBytes(dir.File("pre.png")));
        output.WriteLine(parameters);
        // The extension's serialize() order and Python float text; the CLI stretches the map to the output ("Just Resize").
        Assert.Contains("ControlNet 0: \"Module: canny, Model: tiny-controlnet-small-sd15, Weight: 0.8, Resize Mode: Just Resize, " +
            "Processor Res: 64, Threshold A: 100.0, Threshold B: 200.0, Guidance Start: 0.0, Guidance End: 1.0, Pixel Perfect: False, Control Mode: Balanced\"", parameters);
        Assert.Contains("Module: none", Api.Parameters(File.ReadAllBytes(dir.File("ready.png"))));
    }

    [Theory]
    [InlineData("openpose", "openpose")]
    [InlineData("sobel", "unknown")]
    public void Model_based_or_unknown_preprocessors_are_refused_in_one_line(string module, string expected)
    {
        using var dir = new TempDir();
        var (code, _, err) = GenerateCommandTests.Run(Args(dir.File("x.png"), Photo, "--control-preprocess", module));
        Assert.NotEqual(0, code);
        Assert.Contains(expected, err);
        Assert.Single(err.Trim().Split('\n'));
        Assert.False(File.Exists(dir.File("x.png")));
    }

    [Fact]
    public void Preprocess_given_for_some_units_only_is_refused()
    {
        using var dir = new TempDir();
        var args = Args(dir.File("x.png"), Photo, "--controlnet", ControlNetFolder, "--control-image", Photo,
            "--control-preprocess", "canny", "--control-preprocess", "none", "--control-preprocess", "invert");
        var (code, _, err) = GenerateCommandTests.Run(args);
        Assert.NotEqual(0, code);
        Assert.Contains("--control-preprocess once", err);
    }
}
