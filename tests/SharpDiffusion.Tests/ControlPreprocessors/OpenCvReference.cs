using OpenCvSharp;
using SharpDiffusion.Imaging;

namespace SharpDiffusion.Tests.ControlPreprocessors;

/// <summary>
/// What OpenCV (OpenCvSharp4 4.13 and its official native runtime, test-only) computes: the reference our own
/// preprocessors are compared with bit for bit, and sd-webui-controlnet's calls written with it.
/// </summary>
public static class OpenCvReference
{
    /// <summary>cv2.Canny(image, low, high) on interleaved 8-bit pixels of 1 or 3 channels; one byte per pixel.</summary>
    public static byte[] Canny(byte[] pixels, int width, int height, int channels, double low, double high)
    {
        using var src = Mat.FromPixelData(height, width, channels == 1 ? MatType.CV_8UC1 : MatType.CV_8UC3, pixels);
        using var edges = new Mat();
        Cv2.Canny(src, edges, low, high);
        return Bytes(edges);
    }

    /// <summary>sd-webui-controlnet's canny when the short side already is the resolution (cv2.resize copies):
    /// np.pad(mode="edge") to multiples of 64, cv2.Canny(rgb, int(a), int(b)), crop, cv2.COLOR_GRAY2RGB.</summary>
    public static RgbImage A1111Canny(RgbImage image, int low, int high)
    {
        using var padded = PadToMultipleOf64(image);
        using var edges = new Mat();
        Cv2.Canny(padded, edges, low, high);
        using var cropped = new Mat(edges, new Rect(0, 0, image.Width, image.Height));
        using var rgb = new Mat();
        Cv2.CvtColor(cropped, rgb, ColorConversionCodes.GRAY2RGB);
        return new RgbImage(image.Width, image.Height, Bytes(rgb));
    }

    /// <summary>cv2.resize(image, (width, height), interpolation=...) by OpenCV's own code: optimizations off, since this
    /// runtime's IPP HAL rounds INTER_CUBIC differently (up to one level on a few percent of the values). Process-wide:
    /// callers run in the <see cref="ProcessWide.Settings"/> collection.</summary>
    public static RgbImage Resize(RgbImage image, int width, int height, InterpolationFlags interpolation)
    {
        using var src = Mat.FromPixelData(image.Height, image.Width, MatType.CV_8UC3, image.Rgb);
        using var scaled = new Mat();
        bool optimized = Cv2.UseOptimized();
        Cv2.SetUseOptimized(false);
        try { Cv2.Resize(src, scaled, new Size(width, height), 0, 0, interpolation); }
        finally { Cv2.SetUseOptimized(optimized); }
        return new RgbImage(width, height, Bytes(scaled));
    }

    /// <summary>The extension's canny at any resolution: cv2.resize to (W', H') with INTER_CUBIC when k = resolution /
    /// short side &gt; 1, else INTER_AREA, then <see cref="A1111Canny(RgbImage, int, int)"/>.</summary>
    public static RgbImage A1111Canny(RgbImage image, int resolution, int low, int high)
    {
        var (w, h) = SharpDiffusion.Imaging.ControlPreprocessors.ResizeImageWithPad.TargetSize(image.Width, image.Height, resolution);
        bool enlarge = resolution > Math.Min(image.Width, image.Height);
        var scaled = w == image.Width && h == image.Height ? image : Resize(image, w, h, enlarge ? InterpolationFlags.Cubic : InterpolationFlags.Area);
        return A1111Canny(scaled, low, high);
    }

    /// <summary>sd-webui-controlnet's threshold: 255 where min over channels &gt; threshold (cv2.threshold BINARY on the
    /// per-pixel minimum), three equal channels.</summary>
    public static RgbImage A1111Threshold(RgbImage image, double threshold)
    {
        using var src = Mat.FromPixelData(image.Height, image.Width, MatType.CV_8UC3, image.Rgb);
        var planes = Cv2.Split(src);
        using var least = new Mat();
        Cv2.Min(planes[0], planes[1], least);
        Cv2.Min(least, planes[2], least);
        using var binary = new Mat();
        Cv2.Threshold(least, binary, threshold, 255, ThresholdTypes.Binary);
        using var rgb = new Mat();
        Cv2.CvtColor(binary, rgb, ColorConversionCodes.GRAY2RGB);
        foreach (var p in planes) p.Dispose();
        return new RgbImage(image.Width, image.Height, Bytes(rgb));
    }

    /// <summary>255 − v per byte (cv2.bitwise_not, as the extension's <c>255 - HWC3(img)</c>).</summary>
    public static RgbImage Invert(RgbImage image)
    {
        using var src = Mat.FromPixelData(image.Height, image.Width, MatType.CV_8UC3, image.Rgb);
        using var inverted = new Mat();
        Cv2.BitwiseNot(src, inverted);
        return new RgbImage(image.Width, image.Height, Bytes(inverted));
    }

    static Mat PadToMultipleOf64(RgbImage image)
    {
        using var src = Mat.FromPixelData(image.Height, image.Width, MatType.CV_8UC3, image.Rgb);
        var padded = new Mat();
        Cv2.CopyMakeBorder(src, padded, 0, (image.Height + 63) / 64 * 64 - image.Height, 0, (image.Width + 63) / 64 * 64 - image.Width,
            BorderTypes.Replicate);
        return padded;
    }

    /// <summary>The pixels of an 8-bit Mat of any channel count, row-major and interleaved.</summary>
    public static byte[] Bytes(Mat mat)
    {
        using var continuous = mat.Clone(); // a clone is continuous (a cropped view is not)
        var data = new byte[continuous.Total() * continuous.ElemSize()];
        System.Runtime.InteropServices.Marshal.Copy(continuous.Data, data, 0, data.Length);
        return data;
    }
}
