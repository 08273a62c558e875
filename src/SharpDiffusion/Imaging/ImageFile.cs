using SkiaSharp;

namespace SharpDiffusion.Imaging;

/// <summary>Reads PNG, JPEG, WebP (and the other formats Skia decodes) into <see cref="RgbImage"/>: EXIF orientation
/// applied (as diffusers' <c>load_image</c>), alpha dropped without compositing.</summary>
public static class ImageFile
{
    /// <summary>Images larger than this many pixels are refused before decoding (8192², 64 megapixels: larger than any
    /// size a generation takes, and a bound on what a small file claiming a huge size can make us allocate).</summary>
    public const long MaxPixels = 8192L * 8192;

    public static RgbImage Load(string path)
    {
        if (Directory.Exists(path))
            throw new ArgumentException($"{path} is a folder, not an image file.");
        if (!File.Exists(path))
            throw new FileNotFoundException($"Image not found: {path}", path);
        return Decode(File.ReadAllBytes(path), path);
    }

    /// <summary>Decodes encoded image bytes; <paramref name="name"/> names them in errors (a path, "init_images[0]").</summary>
    /// <summary>The stored width and height of an encoded image, read from its header without decoding; null if unreadable.</summary>
    public static (int Width, int Height)? ReadSize(byte[] encoded)
    {
        if (encoded.Length == 0) return null;
        using var data = SKData.CreateCopy(encoded);
        using var codec = SKCodec.Create(data);
        return codec is null ? null : (codec.Info.Width, codec.Info.Height);
    }

    public static RgbImage Decode(byte[] encoded, string name)
    {
        if (encoded.Length == 0)
            throw new InvalidDataException($"{name} is empty; give a PNG, JPEG or WebP image.");
        using var data = SKData.CreateCopy(encoded);
        using var codec = SKCodec.Create(data)
            ?? throw new InvalidDataException($"{name} is not a readable image (PNG, JPEG or WebP expected).");
        var size = codec.Info;
        if ((long)size.Width * size.Height > MaxPixels)
            throw new InvalidDataException($"{name} is {size.Width}x{size.Height}, more than {MaxPixels / 1_000_000} megapixels; scale it down first.");
        var info = new SKImageInfo(size.Width, size.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        using var decoded = new SKBitmap(info);
        var result = codec.GetPixels(info, decoded.GetPixels());
        if (result is not (SKCodecResult.Success or SKCodecResult.IncompleteInput))
            throw new InvalidDataException($"{name} could not be decoded ({result}); the file may be damaged.");
        if (result == SKCodecResult.IncompleteInput)
            throw new InvalidDataException($"{name} is truncated (the image data ends early); the file may be damaged.");
        return Orient(RgbImage.FromRgba(decoded.Width, decoded.Height, decoded.GetPixelSpan()), codec.EncodedOrigin);
    }

    /// <summary>EXIF orientation: the stored pixels turned/flipped to how the camera meant them. For each output pixel
    /// (x, y) of the oriented picture, the stored pixel it comes from.</summary>
    public static RgbImage Orient(RgbImage stored, SKEncodedOrigin origin)
    {
        if (origin is SKEncodedOrigin.TopLeft or SKEncodedOrigin.Default)
            return stored;
        int sw = stored.Width, sh = stored.Height;
        bool swap = origin is SKEncodedOrigin.LeftTop or SKEncodedOrigin.RightTop or SKEncodedOrigin.RightBottom or SKEncodedOrigin.LeftBottom;
        int w = swap ? sh : sw, h = swap ? sw : sh;
        var rgb = new byte[w * h * 3];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                var (sx, sy) = origin switch
                {
                    SKEncodedOrigin.TopRight => (sw - 1 - x, y),           // mirrored
                    SKEncodedOrigin.BottomRight => (sw - 1 - x, sh - 1 - y), // turned 180°
                    SKEncodedOrigin.BottomLeft => (x, sh - 1 - y),         // flipped
                    SKEncodedOrigin.LeftTop => (y, x),                     // transposed
                    SKEncodedOrigin.RightTop => (y, sh - 1 - x),           // stored turned 90° anticlockwise
                    SKEncodedOrigin.RightBottom => (sw - 1 - y, sh - 1 - x), // transversed
                    _ => (sw - 1 - y, x),                                  // LeftBottom: stored turned 90° clockwise
                };
                Array.Copy(stored.Rgb, (sy * sw + sx) * 3, rgb, (y * w + x) * 3, 3);
            }
        return new RgbImage(w, h, rgb);
    }
}
