using SharpDiffusion.Imaging;
using SharpDiffusion.Models.Upscalers;

namespace SharpDiffusion.Cli;

/// <summary>`upscale`: a picture through an ESRGAN-family model file (RealESRGAN_x4plus.pth, 4x-UltraSharp.pth,
/// realesr-general-x4v3.pth, ...), tiled, written as a PNG.</summary>
public static class UpscaleCommand
{
    public static readonly OptionSpec[] Options =
    [
        new("model", OptionKind.Text, "the upscaler: an ESRGAN, Real-ESRGAN or SRVGGNetCompact model (.pth or .safetensors)", "FILE"),
        new("image", OptionKind.Text, "the picture (PNG, JPEG or WebP)", "FILE"),
        new("output", OptionKind.Text, "the PNG to write", "FILE"),
        new("scale", OptionKind.Number, "the factor (default: the model's own; another is reached with Lanczos, as AUTOMATIC1111 does)", "X"),
        new("tile", OptionKind.Integer, "tile side in input pixels, 0 for none (default: 192)", "N"),
    ];

    public static int Run(CommandLine cl)
    {
        string modelPath = cl.String("model") ?? throw new UsageException("--model FILE is required: the upscaler model (.pth or .safetensors).");
        string input = cl.String("image") ?? throw new UsageException("--image FILE is required: the picture to upscale.");
        string output = cl.String("output") ?? throw new UsageException("--output FILE is required: the PNG to write.");
        double? scale = cl.Double("scale");
        if (scale is double s && !(s > 0 && s <= 16))
            throw new UsageException($"--scale {s} is out of range: give a factor above 0 and at most 16.");
        int tile = cl.Int("tile") ?? 192;
        if (tile != 0 && (tile < 32 || tile > 4096))
            throw new UsageException($"--tile {tile} is out of range: give 32-4096 input pixels, or 0 for no tiling.");
        AtomicFiles.CheckWritable(output);

        var picture = ImageFile.Load(input);
        using var upscaler = Upscaler.Load(modelPath);
        upscaler.Tile = tile;
        var result = upscaler.Upscale(picture, scale);
        AtomicFiles.WriteAll([(output, PngFile.Encode(result.Width, result.Height, result.Rgb))]);
        Progress.Line($"Wrote {AtomicFiles.Printable(output)} ({upscaler.Architecture} ×{upscaler.Scale}, {picture.Size} → {result.Size})");
        return 0;
    }
}
