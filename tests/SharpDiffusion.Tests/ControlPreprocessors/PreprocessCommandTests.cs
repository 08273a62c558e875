using SharpDiffusion.Imaging;
using SharpDiffusion.Tests.Cli;

namespace SharpDiffusion.Tests.ControlPreprocessors;

/// <summary>`preprocess`: the map written as a PNG (OpenCV's edges for canny), and bad input in one line.</summary>
[Collection(ProcessWide.Settings)]
public class PreprocessCommandTests
{
    static (int Code, string Out, string Err) Run(params string[] args) => GenerateCommandTests.Run(args);

    static readonly string Photo = Golden.Path("img2img", "init_64x64.png");

    [Fact]
    public void Canny_writes_opencvs_edge_map_as_an_rgb_png()
    {
        using var dir = new TempDir();
        string output = dir.File("edges.png");
        var (code, stdout, err) = Run("preprocess", "--module", "canny", "--image", Photo, "--output", output, "--low", "50", "--high", "150");
        Assert.True(code == 0, err);
        Assert.Contains("edges.png", stdout);
        var (w, h, rgb) = PngFile.Decode(output);
        var photo = ImageFile.Load(Photo);
        Assert.Equal((photo.Width, photo.Height), (w, h));
        Assert.Equal(OpenCvReference.A1111Canny(photo, 50, 150).Rgb, rgb);
    }

    [Fact]
    public void Threshold_and_invert_write_their_maps()
    {
        using var dir = new TempDir();
        var photo = ImageFile.Load(Photo);
        Assert.Equal(0, Run("preprocess", "--module", "threshold", "--threshold", "90", "--image", Photo, "--output", dir.File("t.png")).Code);
        Assert.Equal(OpenCvReference.A1111Threshold(photo, 90).Rgb, PngFile.Decode(dir.File("t.png")).Rgb);
        Assert.Equal(0, Run("preprocess", "--module", "invert", "--image", Photo, "--output", dir.File("i.png")).Code);
        Assert.Equal(OpenCvReference.Invert(photo).Rgb, PngFile.Decode(dir.File("i.png")).Rgb);
    }

    [Theory]
    [InlineData("needs an annotator model", "--module", "openpose")]
    [InlineData("Low Threshold", "--low", "0")]
    [InlineData("High Threshold", "--high", "256")]
    [InlineData("does not apply to --module canny", "--threshold", "100")]
    [InlineData("does not apply to --module invert", "--module", "invert", "--low", "100")]
    [InlineData("--resolution", "--resolution", "32")]
    public void Bad_options_fail_in_one_line_and_write_nothing(string message, params string[] extra)
    {
        using var dir = new TempDir();
        string output = dir.File("out.png");
        var (code, _, err) = Run(["preprocess", "--image", Photo, "--output", output, .. extra]);
        Assert.Equal(2, code);
        Assert.Contains(message, err);
        Assert.Single(err.Trim().Split('\n'));
        Assert.False(File.Exists(output));
    }
}
