namespace SharpDiffusion.Imaging.ControlPreprocessors;

/// <summary>
/// sd-webui-controlnet's <c>resize_image_with_pad</c>: the picture scaled so its short side is <c>resolution</c>
/// (k = resolution / min(H, W); H' = round(H·k), W' = round(W·k), round half to even as numpy), padded on the right and
/// bottom to multiples of 64 by repeating the edge pixels (<c>np.pad(mode="edge")</c>), the map made on the padded picture,
/// then cropped back to W'×H'. The padding matters: Canny at the right and bottom border sees the repeated pixels.
/// </summary>
/// <remarks>The scaling is <see cref="OpenCvResize"/> (cv2.resize's INTER_CUBIC up, INTER_AREA down); a picture whose
/// short side already is the resolution is used as it is (cv2.resize copies a same-size picture).</remarks>
public static class ResizeImageWithPad
{
    /// <summary>The largest scaled picture made (4096², 16 megapixels): Canny keeps about 10 bytes a pixel.</summary>
    public const long MaxPixels = 4096L * 4096;

    /// <summary>The map <paramref name="preprocess"/> makes of the scaled, padded picture, cropped to the scaled size.</summary>
    public static RgbImage Apply(RgbImage image, int resolution, Func<RgbImage, RgbImage> preprocess)
    {
        var (width, height) = TargetSize(image.Width, image.Height, resolution);
        // The extension's choice by its one scale factor k = resolution / short side: cubic to enlarge, area to shrink.
        var scaled = width == image.Width && height == image.Height ? image
            : resolution > Math.Min(image.Width, image.Height) ? OpenCvResize.Cubic(image, width, height) : OpenCvResize.Area(image, width, height);
        var padded = PadEdge(scaled, Pad64(width), Pad64(height));
        var map = preprocess(padded);
        if (map.Width != padded.Width || map.Height != padded.Height)
            throw new InvalidOperationException($"ResizeImageWithPad: the preprocessor returned {map.Size} for a {padded.Size} picture.");
        return Crop(map, width, height);
    }

    /// <summary>(W', H'): the short side scaled to <paramref name="resolution"/>, the long side in proportion.</summary>
    public static (int Width, int Height) TargetSize(int width, int height, int resolution)
    {
        if (resolution <= 0)
            throw new ArgumentException($"ResizeImageWithPad: the resolution must be positive; got {resolution}.");
        double k = (double)resolution / Math.Min(width, height);
        double w = Math.Round(width * k, MidpointRounding.ToEven), h = Math.Round(height * k, MidpointRounding.ToEven);
        if (w * h > MaxPixels)
            throw new ArgumentException($"ResizeImageWithPad: a {width}x{height} picture at resolution {resolution} would be {w}x{h}, " +
                $"more than {MaxPixels / 1_000_000} megapixels; give a smaller resolution or crop the picture.");
        return ((int)w, (int)h);
    }

    /// <summary>How many pixels make <paramref name="size"/> a multiple of 64 (the extension's <c>pad64</c>).</summary>
    static int Pad64(int size) => (size + 63) / 64 * 64 - size;

    static RgbImage PadEdge(RgbImage image, int right, int bottom)
    {
        if (right == 0 && bottom == 0) return image;
        int w = image.Width + right, h = image.Height + bottom;
        var rgb = new byte[w * h * 3];
        for (int y = 0; y < h; y++)
        {
            int source = Math.Min(y, image.Height - 1) * image.Width * 3;
            Array.Copy(image.Rgb, source, rgb, y * w * 3, image.Width * 3);
            for (int x = image.Width; x < w; x++)
                Array.Copy(image.Rgb, source + (image.Width - 1) * 3, rgb, (y * w + x) * 3, 3);
        }
        return new RgbImage(w, h, rgb);
    }

    static RgbImage Crop(RgbImage image, int width, int height)
    {
        if (width == image.Width && height == image.Height) return image;
        var rgb = new byte[width * height * 3];
        for (int y = 0; y < height; y++)
            Array.Copy(image.Rgb, y * image.Width * 3, rgb, y * width * 3, width * 3);
        return new RgbImage(width, height, rgb);
    }
}
