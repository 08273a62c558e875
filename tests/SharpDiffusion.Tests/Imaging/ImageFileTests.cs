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

    /// <summary>An 8-bit RGBA PNG written byte by byte (colour type 6, filter 0), so no encoder can premultiply it.</summary>
    static byte[] RgbaPng(byte[] rgba, int w, int h)
    {
        static void Chunk(Stream s, string type, byte[] data)
        {
            var typed = System.Text.Encoding.ASCII.GetBytes(type).Concat(data).ToArray();
            s.Write(BitConverter.GetBytes(data.Length).Reverse().ToArray());
            s.Write(typed);
            s.Write(BitConverter.GetBytes(System.IO.Hashing.Crc32.HashToUInt32(typed)).Reverse().ToArray());
        }
        var raw = new MemoryStream();
        for (int y = 0; y < h; y++)
        {
            raw.WriteByte(0);
            raw.Write(rgba, y * w * 4, w * 4);
        }
        var compressed = new MemoryStream();
        using (var z = new System.IO.Compression.ZLibStream(compressed, System.IO.Compression.CompressionLevel.Optimal, leaveOpen: true))
            z.Write(raw.ToArray());
        var png = new MemoryStream();
        png.Write([137, 80, 78, 71, 13, 10, 26, 10]);
        Chunk(png, "IHDR", [.. BitConverter.GetBytes(w).Reverse(), .. BitConverter.GetBytes(h).Reverse(), 8, 6, 0, 0, 0]);
        Chunk(png, "IDAT", compressed.ToArray());
        Chunk(png, "IEND", []);
        return png.ToArray();
    }

    [Fact]
    public void A_small_file_claiming_a_huge_picture_is_refused_before_decoding()
    {
        var png = RgbaPng(new byte[4 * 4 * 4], 4, 4);
        // IHDR's width and height (bytes 16..23) claim 20000x20000 for the same tiny data.
        byte[] huge = [.. png[..16], 0, 0, 0x4E, 0x20, 0, 0, 0x4E, 0x20, .. png[24..]];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(huge.AsSpan(29), System.IO.Hashing.Crc32.HashToUInt32(huge.AsSpan(12, 17)));
        long before = GC.GetTotalMemory(false);
        var e = Assert.Throws<InvalidDataException>(() => ImageFile.Decode(huge, "huge.png"));
        Assert.Contains("huge.png is 20000x20000, more than 67 megapixels", e.Message);
        Assert.True(GC.GetTotalMemory(false) - before < 100_000_000);
    }

    [Fact]
    public void Transparent_png_pixels_keep_their_colour_as_PIL_convert_RGB_does()
    {
        byte[] rgba = [200, 100, 50, 0, 10, 20, 30, 128, 255, 255, 255, 255, 1, 2, 3, 64];
        var image = ImageFile.Decode(RgbaPng(rgba, 2, 2), "alpha.png");
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

    /// <summary>A camera JPEG stored sideways with EXIF orientation 6 ("rotate 90° clockwise to view") comes out upright,
    /// as diffusers' load_image (PIL's exif_transpose) gives it.</summary>
    [Fact]
    public void Exif_orientation_is_applied()
    {
        const int w = 16, h = 8; // stored: left half red, right half blue
        var rgba = new byte[w * h * 4];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                (rgba[(y * w + x) * 4], rgba[(y * w + x) * 4 + 2], rgba[(y * w + x) * 4 + 3]) = (x < w / 2 ? (byte)255 : (byte)0, x < w / 2 ? (byte)0 : (byte)255, (byte)255);
        var jpeg = Encode(SKEncodedImageFormat.Jpeg, SKAlphaType.Opaque, rgba, w, h);
        byte[] tiff = [(byte)'M', (byte)'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0];
        byte[] exif = [.. "Exif\0\0"u8, .. tiff];
        byte[] app1 = [0xFF, 0xE1, (byte)((exif.Length + 2) >> 8), (byte)(exif.Length + 2), .. exif];
        var image = ImageFile.Decode([.. jpeg[..2], .. app1, .. jpeg[2..]], "sideways.jpg");

        Assert.Equal((h, w), (image.Width, image.Height));                 // 8 wide, 16 tall
        byte[] Pixel(int x, int y) => image.Rgb[((y * image.Width + x) * 3)..((y * image.Width + x) * 3 + 3)];
        Assert.True(Pixel(4, 3)[0] > 200 && Pixel(4, 3)[2] < 50, "top should be red");
        Assert.True(Pixel(4, 12)[2] > 200 && Pixel(4, 12)[0] < 50, "bottom should be blue");
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
