using SkiaSharp;

namespace SharpDiffusion.Imaging;

/// <summary>An 8-bit RGB picture: row-major, 3 bytes per pixel, no alpha (as PIL's <c>convert("RGB")</c>).</summary>
public sealed record RgbImage
{
    public int Width { get; }
    public int Height { get; }
    public byte[] Rgb { get; }

    public RgbImage(int width, int height, byte[] rgb)
    {
        if (width <= 0 || height <= 0)
            throw new ArgumentException($"An image needs a positive size; got {width}x{height}.");
        if (rgb.Length != (long)width * height * 3)
            throw new ArgumentException($"Expected {(long)width * height * 3} RGB bytes for {width}x{height}, got {rgb.Length}.");
        (Width, Height, Rgb) = (width, height, rgb);
    }

    public string Size => $"{Width}x{Height}";

    /// <summary>PIL's "L" conversion, ITU-R 601-2 luma in 16-bit fixed point: (19595·R + 38470·G + 7471·B + 2¹⁵) >> 16.</summary>
    public byte[] Luma()
    {
        var luma = new byte[Width * Height];
        for (int p = 0, q = 0; p < luma.Length; p++, q += 3)
            luma[p] = (byte)((19595 * Rgb[q] + 38470 * Rgb[q + 1] + 7471 * Rgb[q + 2] + 0x8000) >> 16);
        return luma;
    }

    /// <summary>The picture scaled to <paramref name="width"/>×<paramref name="height"/> (bicubic, Catmull-Rom: close to
    /// the Lanczos filter diffusers' image processor uses). The same size returns this image.</summary>
    public RgbImage Resize(int width, int height)
    {
        if (width == Width && height == Height) return this;
        using var source = ToBitmap();
        using var scaled = source.Resize(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul),
            new SKSamplingOptions(SKCubicResampler.CatmullRom))
            ?? throw new InvalidOperationException($"Could not resize a {Size} image to {width}x{height}.");
        return FromRgba(scaled.Width, scaled.Height, scaled.Bytes);
    }

    internal SKBitmap ToBitmap()
    {
        var bitmap = new SKBitmap(new SKImageInfo(Width, Height, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        var rgba = new byte[Width * Height * 4];
        for (int p = 0, q = 0; p < Rgb.Length; p += 3, q += 4)
            (rgba[q], rgba[q + 1], rgba[q + 2], rgba[q + 3]) = (Rgb[p], Rgb[p + 1], Rgb[p + 2], 255);
        System.Runtime.InteropServices.Marshal.Copy(rgba, 0, bitmap.GetPixels(), rgba.Length);
        return bitmap;
    }

    /// <summary>Drops the alpha channel of unpremultiplied RGBA bytes (no compositing, as PIL's convert("RGB")).</summary>
    internal static RgbImage FromRgba(int width, int height, ReadOnlySpan<byte> rgba)
    {
        var rgb = new byte[width * height * 3];
        for (int p = 0, q = 0; p < rgb.Length; p += 3, q += 4)
            (rgb[p], rgb[p + 1], rgb[p + 2]) = (rgba[q], rgba[q + 1], rgba[q + 2]);
        return new RgbImage(width, height, rgb);
    }
}
