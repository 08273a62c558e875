using SharpDiffusion.Imaging;
using SharpDiffusion.Imaging.ControlPreprocessors;

namespace SharpDiffusion.Tests.ControlPreprocessors;

/// <summary>sd-webui-controlnet's model-free preprocessors (canny, threshold, invert, none) against the extension's steps
/// written with OpenCV; its defaults and slider ranges; the refusal of model-based annotators.</summary>
public class ControlPreprocessorTests
{
    static int ShortSide(RgbImage image) => Math.Min(image.Width, image.Height);

    [Fact]
    public void Canny_at_the_pictures_own_size_equals_the_extensions_padded_opencv_canny()
    {
        foreach (var (name, image) in TestPictures.All())
            foreach (var (low, high) in new[] { (100, 200), (50, 150), (20, 40), (200, 100) })
            {
                var expected = OpenCvReference.A1111Canny(image, low, high);
                var actual = ControlPreprocessor.Canny.RunAtOwnSize(image, low, high);
                Assert.Equal(image.Size, actual.Size);
                CannyDetectorTests.AssertSameEdges(expected.Rgb, actual.Rgb, $"canny module on {name}, {low}/{high}");
            }
    }

    /// <summary>The API's path: a processor_res equal to the short side (64 or more) uses the picture as it is.</summary>
    [Fact]
    public void Canny_at_a_resolution_equal_to_the_short_side_equals_the_extensions_padded_opencv_canny()
    {
        var pictures = TestPictures.All().Where(p => ShortSide(p.Image) >= 64).Concat(TestPictures.Large()).ToList();
        Assert.True(pictures.Count >= 6);
        foreach (var (name, image) in pictures)
            CannyDetectorTests.AssertSameEdges(OpenCvReference.A1111Canny(image, 100, 200).Rgb,
                ControlPreprocessor.Canny.Run(image, ShortSide(image), 100, 200).Rgb, $"canny module on {name} at {ShortSide(image)}");
    }

    /// <summary>The extension truncates the sliders to integers (int(slider_1)) before cv2.Canny.</summary>
    [Fact]
    public void Canny_truncates_fractional_thresholds_as_the_extension()
    {
        var image = TestPictures.All().Single(p => p.Name == "anti-aliased discs").Image;
        Assert.Equal(OpenCvReference.A1111Canny(image, 40, 90).Rgb, ControlPreprocessor.Canny.RunAtOwnSize(image, 40.9, 90.99).Rgb);
    }

    [Fact]
    public void Sliders_out_of_range_mean_the_extensions_defaults()
    {
        var image = TestPictures.Golden("img2img", "init_64x64.png");
        var canny = ControlPreprocessor.Canny;
        var defaults = canny.Run(image, canny.Resolution!.Value, canny.ThresholdA!.Value, canny.ThresholdB!.Value);
        Assert.Equal(defaults.Rgb, canny.Run(image).Rgb);                      // -1: not given
        Assert.Equal(defaults.Rgb, canny.Run(image, 5000, 0, 256).Rgb);         // outside 64-2048, 1-255
        var threshold = ControlPreprocessor.Threshold;
        Assert.Equal(threshold.Run(image, 64, threshold.ThresholdA!.Value).Rgb, threshold.Run(image, 64, -100).Rgb);
    }

    /// <summary>Short side to the resolution, long side in proportion, rounded as numpy (half to even): 64x48 at 512 is
    /// 64·512/48 = 682.67 → 683 by 512; 5x2 at 5 is 12.5 → 12 by 5. The maps are cropped back from the padding.</summary>
    [Fact]
    public void A_resolution_other_than_the_short_side_scales_the_picture_as_the_extension()
    {
        Assert.Equal((683, 512), ResizeImageWithPad.TargetSize(64, 48, 512));
        Assert.Equal((12, 5), ResizeImageWithPad.TargetSize(5, 2, 5));
        var image = TestPictures.Make(64, 48, (x, y) => (x * 4, y * 5, 128));
        Assert.Equal("683x512", ControlPreprocessor.Canny.Run(image, 512).Size);
        Assert.Equal("683x512", ControlPreprocessor.Threshold.Run(image, 512).Size);
        var tooLarge = Assert.Throws<ArgumentException>(() => ResizeImageWithPad.TargetSize(1, 8192, 2048));
        Assert.Contains("megapixels", tooLarge.Message);
    }

    [Fact]
    public void Threshold_equals_opencvs_binary_threshold_of_the_smallest_channel()
    {
        foreach (var (name, image) in TestPictures.All())
            foreach (double level in new[] { 127, 0, 254.5, 63.2 })
                Assert.True(OpenCvReference.A1111Threshold(image, level).Rgb.AsSpan().SequenceEqual(
                    ControlPreprocessor.Threshold.RunAtOwnSize(image, level).Rgb), $"threshold {level} on {name}");
    }

    [Fact]
    public void Invert_is_255_minus_every_value_at_the_pictures_size()
    {
        foreach (var (name, image) in TestPictures.All())
            Assert.True(OpenCvReference.Invert(image).Rgb.AsSpan().SequenceEqual(ControlPreprocessor.Invert.Run(image, 512).Rgb), $"invert on {name}");
    }

    [Fact]
    public void None_passes_a_ready_map_through_unchanged()
    {
        var map = TestPictures.Golden("controlnet", "control_edges_64x64.png");
        Assert.Same(map, ControlPreprocessor.None.Run(map, 512, 1, 2));
    }

    [Fact]
    public void Modules_are_found_by_name_or_label_in_the_extensions_order()
    {
        Assert.Equal(["none", "canny", "invert", "threshold"], ControlPreprocessor.All.Select(p => p.Name));
        Assert.Same(ControlPreprocessor.Invert, ControlPreprocessor.Get("invert (from white bg & black line)"));
        foreach (var p in ControlPreprocessor.All)
            Assert.Same(p, ControlPreprocessor.Get(p.Name));
    }

    [Theory]
    [InlineData("openpose")]
    [InlineData("depth_midas")]
    [InlineData("lineart")]
    [InlineData("normal_bae")]
    [InlineData("softedge_hed")]
    public void Model_based_annotators_are_refused_in_one_line(string module)
    {
        var e = Assert.Throws<NotSupportedException>(() => ControlPreprocessor.Get(module));
        Assert.Equal($"preprocessor '{module}' needs an annotator model SharpDiffusion does not run; make the map elsewhere and pass it with module 'none'", e.Message);
    }

    [Fact]
    public void Model_free_preprocessors_not_built_and_unknown_names_say_what_there_is()
    {
        var notBuilt = Assert.Throws<NotSupportedException>(() => ControlPreprocessor.Get("scribble_xdog"));
        Assert.Contains("not built into SharpDiffusion (it has none, canny, invert, threshold)", notBuilt.Message);
        var unknown = Assert.Throws<ArgumentException>(() => ControlPreprocessor.Get("cany"));
        Assert.Contains("use one of none, canny, invert, threshold", unknown.Message);
    }
}
