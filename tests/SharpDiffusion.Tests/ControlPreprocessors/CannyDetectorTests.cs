using SharpDiffusion.Imaging;
using SharpDiffusion.Imaging.ControlPreprocessors;
using Xunit.Abstractions;

namespace SharpDiffusion.Tests.ControlPreprocessors;

/// <summary>Our Canny against OpenCV's cv2.Canny, bit for bit: every test picture (the golden control map and photos,
/// ramps, discs, noise, disagreeing colour channels, odd sizes), in colour and grey, at several thresholds.</summary>
public class CannyDetectorTests(ITestOutputHelper output)
{
    /// <summary>sd-webui-controlnet's default (100, 200), looser and tighter ones, swapped, fractional and equal ones.</summary>
    public static readonly (double Low, double High)[] Thresholds =
        [(100, 200), (50, 150), (1, 255), (20, 40), (200, 100), (10.7, 30.2), (80, 80), (0, 0), (255, 255), (300, 500)];

    [Fact]
    public void Colour_pictures_give_opencvs_edges_bit_for_bit()
    {
        int cases = 0, edgePixels = 0;
        foreach (var (name, image) in TestPictures.All())
            foreach (var (low, high) in Thresholds)
            {
                var expected = OpenCvReference.Canny(image.Rgb, image.Width, image.Height, 3, low, high);
                var actual = CannyDetector.Detect(image, low, high);
                AssertSameEdges(expected, actual, $"{name} ({image.Size}), thresholds {low}/{high}");
                cases++;
                edgePixels += expected.Count(v => v == 255);
            }
        output.WriteLine($"{cases} colour cases equal OpenCV's, {edgePixels} edge pixels in all (0 pixels differ)");
        Assert.True(edgePixels > 1000, "the pictures have edges to find");
    }

    [Fact]
    public void Grey_pictures_give_opencvs_edges_bit_for_bit()
    {
        foreach (var (name, image) in TestPictures.All())
        {
            var luma = image.Luma();
            foreach (var (low, high) in Thresholds)
                AssertSameEdges(OpenCvReference.Canny(luma, image.Width, image.Height, 1, low, high),
                    CannyDetector.Detect(luma, image.Width, image.Height, 1, low, high), $"grey {name}, thresholds {low}/{high}");
        }
    }

    [Fact]
    public void Golden_control_map_keeps_edges_at_the_default_thresholds()
    {
        var map = TestPictures.Golden("controlnet", "control_edges_64x64.png");
        var edges = CannyDetector.Detect(map, 100, 200);
        Assert.Equal(OpenCvReference.Canny(map.Rgb, map.Width, map.Height, 3, 100, 200), edges);
        Assert.Contains(edges, v => v == 255);
        Assert.All(edges, v => Assert.True(v is 0 or 255));
    }

    [Theory]
    [InlineData(2, 0, 0)]
    [InlineData(3, 3, 2)]
    [InlineData(5, 4, 4)]
    public void Bad_input_is_refused_in_one_line(int channels, int width, int height)
    {
        var e = Assert.Throws<ArgumentException>(() => CannyDetector.Detect(new byte[7], width, height, channels, 100, 200));
        Assert.StartsWith("CannyDetector:", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Non_finite_thresholds_are_refused()
    {
        var image = new RgbImage(2, 2, new byte[12]);
        Assert.Throws<ArgumentException>(() => CannyDetector.Detect(image, double.NaN, 200));
        Assert.Throws<ArgumentException>(() => CannyDetector.Detect(image, 100, double.PositiveInfinity));
    }

    internal static void AssertSameEdges(byte[] expected, byte[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        int differ = expected.Zip(actual).Count(p => p.First != p.Second);
        Assert.True(differ == 0, $"{what}: {differ} of {expected.Length} pixels differ from OpenCV's Canny");
    }
}
