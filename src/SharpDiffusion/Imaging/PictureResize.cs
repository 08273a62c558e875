namespace SharpDiffusion.Imaging;

/// <summary>
/// Resizing as PIL's Image.resize does it, for the upscalers AUTOMATIC1111 names "Lanczos" (LANCZOS: a separable
/// 3-lobe windowed sinc, widened by the scale when shrinking, horizontal pass then vertical, each rounded to bytes) and
/// "Nearest" (NEAREST: the source pixel under each output pixel's centre).
/// </summary>
public static class PictureResize
{
    public static RgbImage Lanczos(RgbImage image, int width, int height)
    {
        if (width == image.Width && height == image.Height) return image;
        var horizontal = Pass(image.Rgb, image.Width, image.Height, width, horizontalPass: true);           // [H, w', 3]
        var both = Pass(horizontal, width, image.Height, height, horizontalPass: false);                   // [h', w', 3]
        return new RgbImage(width, height, both);
    }

    public static RgbImage Nearest(RgbImage image, int width, int height)
    {
        var rgb = new byte[width * height * 3];
        for (int y = 0; y < height; y++)
        {
            int sy = Math.Min((int)((y + 0.5) * image.Height / height), image.Height - 1);
            for (int x = 0; x < width; x++)
            {
                int sx = Math.Min((int)((x + 0.5) * image.Width / width), image.Width - 1);
                Array.Copy(image.Rgb, (sy * image.Width + sx) * 3, rgb, (y * width + x) * 3, 3);
            }
        }
        return new RgbImage(width, height, rgb);
    }

    /// <summary>One direction of PIL's resample: output pixel i covers source centre (i + ½)·scale; weights
    /// lanczos((j − centre + ½)/filterscale) over j within 3·filterscale, normalised.</summary>
    static byte[] Pass(byte[] source, int width, int height, int outSize, bool horizontalPass)
    {
        int inSize = horizontalPass ? width : height;
        double scale = inSize / (double)outSize, filterScale = Math.Max(scale, 1), support = 3 * filterScale;
        int outWidth = horizontalPass ? outSize : width, outHeight = horizontalPass ? height : outSize;
        var result = new byte[outWidth * outHeight * 3];
        var weights = new double[(int)Math.Ceiling(support) * 2 + 2];
        for (int i = 0; i < outSize; i++)
        {
            double centre = (i + 0.5) * scale;
            int first = Math.Max((int)(centre - support + 0.5), 0), last = Math.Min((int)(centre + support + 0.5), inSize);
            double total = 0;
            for (int j = first; j < last; j++) total += weights[j - first] = Kernel((j - centre + 0.5) / filterScale);
            for (int j = first; j < last; j++) weights[j - first] /= total;
            int lines = horizontalPass ? height : width;
            for (int line = 0; line < lines; line++)
                for (int c = 0; c < 3; c++)
                {
                    double sum = 0;
                    for (int j = first; j < last; j++)
                        sum += weights[j - first] * source[(horizontalPass ? line * width + j : j * width + line) * 3 + c];
                    result[(horizontalPass ? line * outWidth + i : i * outWidth + line) * 3 + c] = (byte)Math.Clamp(Math.Round(sum), 0, 255);
                }
        }
        return result;
    }

    static double Kernel(double x)
    {
        if (x == 0) return 1;
        if (x <= -3 || x >= 3) return 0;
        double px = Math.PI * x;
        return Math.Sin(px) / px * Math.Sin(px / 3) / (px / 3);
    }
}
