using SkiaSharp;

namespace SharpDiffusion.Imaging;

/// <summary>Reads PNG, JPEG, WebP (and the other formats Skia decodes) into <see cref="RgbImage"/>: EXIF orientation
/// applied (as diffusers' <c>load_image</c>), alpha dropped without compositing.</summary>
public static class ImageFile
{
    /// <summary>Images larger than this many pixels are refused before decoding (a 16384² picture).</summary>
    public const long MaxPixels = 16384L * 16384;

    public static RgbImage Load(string path)
    {
        if (Directory.Exists(path))
            throw new ArgumentException($"{path} is a folder, not an image file.");
        if (!File.Exists(path))
            throw new FileNotFoundException($"Image not found: {path}", path);
        return Decode(File.ReadAllBytes(path), path);
    }

    /// <summary>Decodes encoded image bytes; <paramref name="name"/> names them in errors (a path, "init_images[0]").</summary>
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
        using var oriented = Orient(decoded, codec.EncodedOrigin);
        return RgbImage.FromRgba(oriented.Width, oriented.Height, oriented.Bytes);
    }

    // EXIF orientation: rotate/flip the stored pixels to how the camera meant them.
    static SKBitmap Orient(SKBitmap source, SKEncodedOrigin origin)
    {
        if (origin is SKEncodedOrigin.TopLeft or SKEncodedOrigin.Default)
            return source.Copy();
        bool swap = origin is SKEncodedOrigin.LeftTop or SKEncodedOrigin.RightTop or SKEncodedOrigin.RightBottom or SKEncodedOrigin.LeftBottom;
        int w = swap ? source.Height : source.Width, h = swap ? source.Width : source.Height;
        var target = new SKBitmap(new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        using var canvas = new SKCanvas(target);
        canvas.SetMatrix(OriginMatrix(origin, source.Width, source.Height));
        canvas.DrawBitmap(source, 0, 0);
        return target;
    }

    static SKMatrix OriginMatrix(SKEncodedOrigin origin, int w, int h) => origin switch
    {
        SKEncodedOrigin.TopRight => new SKMatrix(-1, 0, w, 0, 1, 0, 0, 0, 1),
        SKEncodedOrigin.BottomRight => new SKMatrix(-1, 0, w, 0, -1, h, 0, 0, 1),
        SKEncodedOrigin.BottomLeft => new SKMatrix(1, 0, 0, 0, -1, h, 0, 0, 1),
        SKEncodedOrigin.LeftTop => new SKMatrix(0, 1, 0, 1, 0, 0, 0, 0, 1),
        SKEncodedOrigin.RightTop => new SKMatrix(0, -1, h, 1, 0, 0, 0, 0, 1),
        SKEncodedOrigin.RightBottom => new SKMatrix(0, -1, h, -1, 0, w, 0, 0, 1),
        SKEncodedOrigin.LeftBottom => new SKMatrix(0, 1, 0, -1, 0, w, 0, 0, 1),
        _ => SKMatrix.Identity,
    };
}
