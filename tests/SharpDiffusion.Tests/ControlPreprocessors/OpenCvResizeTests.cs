using OpenCvSharp;
using SharpDiffusion.Imaging;
using SharpDiffusion.Imaging.ControlPreprocessors;
using Xunit.Abstractions;

namespace SharpDiffusion.Tests.ControlPreprocessors;

/// <summary>Our cv2.resize (INTER_CUBIC up, INTER_AREA down) against OpenCV's, and the extension's canny at a
/// resolution that resamples the picture (sd-webui-controlnet's default 512 among them) against OpenCV's steps.
/// OpenCV's optimizations are switched off for its resize (see <see cref="OpenCvReference.Resize"/>): process-wide.</summary>
[Collection(ProcessWide.Settings)]
public class OpenCvResizeTests(ITestOutputHelper output)
{
    static IEnumerable<(string Name, RgbImage Image)> Pictures() =>
        TestPictures.All().Where(p => p.Image.Width >= 8 && p.Image.Height >= 8).Concat(TestPictures.Large());

    /// <summary>Up by 8 (64→512), by non-whole factors, and by a few pixels.</summary>
    [Fact]
    public void Cubic_enlargement_equals_opencvs_inter_cubic()
    {
        foreach (var (name, image) in Pictures())
            foreach (double factor in new[] { 8.0, 2.5, 1.37, 1.02 })
            {
                int w = (int)Math.Round(image.Width * factor), h = (int)Math.Round(image.Height * factor);
                AssertSame(OpenCvReference.Resize(image, w, h, InterpolationFlags.Cubic), OpenCvResize.Cubic(image, w, h), $"cubic {name} to {w}x{h}");
            }
    }

    /// <summary>Down by whole factors (2, 3: OpenCV's fast path) and by non-whole ones.</summary>
    [Fact]
    public void Area_shrinking_equals_opencvs_inter_area()
    {
        foreach (var (name, image) in Pictures())
            foreach (double factor in new[] { 2.0, 3.0, 1.5, 2.37, 1.1 })
            {
                int w = Math.Max(1, (int)Math.Round(image.Width / factor)), h = Math.Max(1, (int)Math.Round(image.Height / factor));
                AssertSame(OpenCvReference.Resize(image, w, h, InterpolationFlags.Area), OpenCvResize.Area(image, w, h), $"area {name} to {w}x{h}");
            }
    }

    [Fact]
    public void Canny_at_resolutions_that_resample_equals_the_extensions_opencv_steps()
    {
        foreach (var (name, image) in Pictures())
            foreach (int resolution in new[] { 512, 96, 64 })
            {
                var expected = OpenCvReference.A1111Canny(image, resolution, 100, 200);
                var actual = ControlPreprocessor.Canny.Run(image, resolution, 100, 200);
                Assert.Equal(expected.Size, actual.Size);
                CannyDetectorTests.AssertSameEdges(expected.Rgb, actual.Rgb, $"canny on {name} at resolution {resolution}");
            }
    }

    void AssertSame(RgbImage expected, RgbImage actual, string what)
    {
        Assert.Equal(expected.Size, actual.Size);
        var diffs = expected.Rgb.Zip(actual.Rgb, (a, b) => Math.Abs(a - b)).ToArray();
        int differ = diffs.Count(d => d > 0);
        if (differ > 0) output.WriteLine($"{what}: {differ} of {diffs.Length} values differ, by at most {diffs.Max()}");
        Assert.True(differ == 0, $"{what}: {differ} of {diffs.Length} values differ from cv2.resize, by at most {diffs.Max()}");
    }
}
