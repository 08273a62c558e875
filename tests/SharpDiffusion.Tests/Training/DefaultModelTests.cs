using SharpDiffusion.Cli;
using SharpDiffusion.Imaging;
using SharpDiffusion.Loading;
using SharpDiffusion.Training;

namespace SharpDiffusion.Tests.Training;

// One collection: these tests set libtorch\'s global thread count, and the resume check compares floats across runs.
[Collection(ProcessWide.Settings)]
public class DefaultModelTests
{
    [Fact]
    public void Generate_without_model_uses_the_shipped_model_and_its_defaults()
    {
        string? located = DefaultModel.Locate();
        Assert.NotNull(located);
        Assert.Equal("sharp-shapes", Path.GetFileName(located));
        var defaults = GenerationDefaults.Load(located!)!;

        using var dir = new TempDir();
        string png = dir.File("out.png");
        int code = SharpDiffusion.Cli.Cli.Run(["generate", "--prompt", "a red circle on a blue background", "--seed", "1", "--threads", "1", "--output", png]);
        Assert.Equal(0, code);
        var text = PngTextChunks(File.ReadAllBytes(png));
        // The parameters chunk records the model and the steps/guidance actually used.
        Assert.Contains("Model: sharp-shapes", text);
        Assert.Contains($"Steps: {defaults.NumInferenceSteps},", text);
        Assert.Contains($"CFG scale: {defaults.GuidanceScale.ToString(System.Globalization.CultureInfo.InvariantCulture)},", text);

        // And it draws what the README's first command asks for (here with seed 1).
        var (width, height, rgb) = PngFile.Decode(png);
        Assert.Equal((ShapeVocabulary.ImageSize, ShapeVocabulary.ImageSize), (width, height));
        var reading = SceneJudge.Read(rgb);
        Assert.Equal("blue", reading.Background.Name);
        Assert.Equal("red", reading.Color?.Name);
    }

    static string PngTextChunks(byte[] png) => System.Text.Encoding.Latin1.GetString(png);
}
