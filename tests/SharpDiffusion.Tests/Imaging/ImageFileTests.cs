using SharpDiffusion.Imaging;
using SkiaSharp;

namespace SharpDiffusion.Tests.Imaging;

/// <summary>Reading the pictures people give: PNG (with alpha), JPEG, WebP; Gaussian mask blur.</summary>
public class ImageFileTests
{
    static byte[] Encode(SKEncodedImageFormat format, SKAlphaType alpha, byte[] rgba, int w, int h, int quality = 100)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(w, h, SKColorType.Rgba8888, alpha));
        System.Runtime.InteropServices.Marshal.Copy(rgba, 0, bitmap.GetPixels(), rgba.Length);
        using var image = SKImage.FromBitmap(bitmap);
        return image.Encode(format, quality).ToArray();
    }

    [Fact]
    public void Transparent_png_pixels_keep_their_colour_as_PIL_convert_RGB_does()
    {
        byte[] rgba = [200, 100, 50, 0, 10, 20, 30, 128, 255, 255, 255, 255, 1, 2, 3, 64];
        var image = ImageFile.Decode(Encode(SKEncodedImageFormat.Png, SKAlphaType.Unpremul, rgba, 2, 2), "alpha.png");
        Assert.Equal(new byte[] { 200, 100, 50, 10, 20, 30, 255, 255, 255, 1, 2, 3 }, image.Rgb);
    }

    [Theory]
    [InlineData(SKEncodedImageFormat.Jpeg, 3)]
    [InlineData(SKEncodedImageFormat.Webp, 3)]
    public void Jpeg_and_webp_decode_to_the_picture(SKEncodedImageFormat format, int tolerance)
    {
        var original = ImageFile.Load(Golden.Path("img2img", "init_64x64.png"));
        var rgba = new byte[64 * 64 * 4];
        for (int p = 0, q = 0; p < original.Rgb.Length; p += 3, q += 4)
            (rgba[q], rgba[q + 1], rgba[q + 2], rgba[q + 3]) = (original.Rgb[p], original.Rgb[p + 1], original.Rgb[p + 2], 255);
        var decoded = ImageFile.Decode(Encode(format, SKAlphaType.Opaque, rgba, 64, 64), $"init.{format}");
        Assert.Equal((64, 64), (decoded.Width, decoded.Height));
        double meanError = decoded.Rgb.Zip(original.Rgb, (a, b) => Math.Abs(a - b)).Average();
        Assert.True(meanError < tolerance, $"{format}: mean error {meanError:F2} levels");
    }

    [Fact]
    public void Blurring_one_white_pixel_draws_the_normalised_gaussian()
    {
        const int n = 21;
        var plane = new byte[n * n];
        plane[10 * n + 10] = 255;
        double sigma = 2;
        var blurred = GaussianBlur.Apply(plane, n, n, sigma);
        int radius = (int)(2.5 * sigma + 0.5);
        var g = Enumerable.Range(-radius, 2 * radius + 1).Select(i => Math.Exp(-i * i / (2 * sigma * sigma))).ToArray();
        double total = g.Sum();
        for (int dy = -radius; dy <= radius; dy++)
            for (int dx = -radius; dx <= radius; dx++)
            {
                double expected = 255 * g[dy + radius] / total * g[dx + radius] / total;
                Assert.True(Math.Abs(blurred[(10 + dy) * n + 10 + dx] - expected) <= 0.5 + 1e-3, $"({dx},{dy}): {blurred[(10 + dy) * n + 10 + dx]} vs {expected:F2}");
            }
        Assert.Equal(0, blurred[0]);
    }
}
