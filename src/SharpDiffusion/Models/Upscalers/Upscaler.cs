using SharpDiffusion.Imaging;
using SharpDiffusion.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpDiffusion.Models.Upscalers;

/// <summary>
/// An ESRGAN-family upscaler file (<c>.pth</c> through the safe unpickler, or <c>.safetensors</c>) ready to run:
/// <c>Upscaler.Load("RealESRGAN_x4plus.pth").Upscale(picture)</c>. Pictures larger than <see cref="Tile"/> are
/// run in overlapping tiles so a 2048² output needs no more memory than one tile's activations.
/// </summary>
public sealed class Upscaler : IDisposable
{
    /// <summary>The largest output side we make: 16384² RGB floats are already 3 GB.</summary>
    public const int MaxOutputSide = 16384;

    readonly nn.Module<Tensor, Tensor> _network;

    /// <summary>The model's own factor (2 or 4; 1 or 8 are possible).</summary>
    public int Scale { get; }
    public string Architecture { get; }
    public string Path { get; }

    /// <summary>The tile side in input pixels (A1111's ESRGAN_tile is 192); 0 runs the whole picture at once.</summary>
    public int Tile { get; set; } = 192;

    /// <summary>Context around each tile, in input pixels, whose output is dropped: enough that a tile's kept centre
    /// matches the untiled run within one uint8 level.</summary>
    public int Overlap { get; set; } = 16;

    Upscaler(nn.Module<Tensor, Tensor> network, int scale, string architecture, string path) =>
        (_network, Scale, Architecture, Path) = (network, scale, architecture, path);

    public static Upscaler Load(string path)
    {
        using var file = TensorFiles.Open(path);
        var weights = UpscalerWeights.Read(file);
        nn.Module<Tensor, Tensor> network = weights.RRDBNet is { } rrdb ? new RRDBNet(rrdb) : new SRVGGNetCompact(weights.Compact!);
        try
        {
            StateDictLoader.Load(network, [file], rename: k => weights.Names[k], ignore: k => !weights.Names.ContainsKey(k));
        }
        catch
        {
            network.Dispose();
            throw;
        }
        network.eval();
        return new Upscaler(network, weights.Scale, weights.Architecture, path);
    }

    /// <summary>
    /// The picture upscaled by <paramref name="scale"/> (default: the model's own), as AUTOMATIC1111 does it: the
    /// model runs (up to three times) until the picture is at least the target size, then Lanczos resizes to it.
    /// </summary>
    public RgbImage Upscale(RgbImage picture, double? scale = null)
    {
        double factor = scale ?? Scale;
        if (!(factor > 0) || double.IsInfinity(factor))
            throw new ArgumentException($"Upscale factor {factor} must be a positive number.");
        int width = (int)Math.Round(picture.Width * factor), height = (int)Math.Round(picture.Height * factor);
        if (width < 1 || height < 1 || width > MaxOutputSide || height > MaxOutputSide)
            throw new ArgumentException($"Upscaling {picture.Size} by {factor} gives {width}x{height}; the output must be 1-{MaxOutputSide} pixels a side.");
        var result = picture;
        for (int pass = 0; pass < 3 && (result.Width < width || result.Height < height); pass++)
        {
            if ((long)result.Width * Scale > MaxOutputSide || (long)result.Height * Scale > MaxOutputSide) break;
            result = RunModel(result);
        }
        return PictureResize.Lanczos(result, width, height);
    }

    /// <summary>One model pass over a picture: bytes → [0, 1] → tiles → clamp → round(·255).</summary>
    RgbImage RunModel(RgbImage picture)
    {
        using var scope = NewDisposeScope();
        using var bytes = tensor(picture.Rgb, [1, picture.Height, picture.Width, 3]);
        var input = bytes.permute(0, 3, 1, 2).to(ScalarType.Float32).div_(255.0);  // [1, 3, H, W]
        var output = Run(input);                                                    // [1, 3, H·s, W·s]
        var hwc = output.clamp_(0, 1).mul_(255.0).round_().to(ScalarType.Byte).permute(0, 2, 3, 1).contiguous();
        return new RgbImage((int)output.shape[3], (int)output.shape[2], hwc.data<byte>().ToArray());
    }

    /// <summary>The model on [B, 3, H, W] RGB in [0, 1] → [B, 3, H·s, W·s], not clamped; tiled when larger than
    /// <see cref="Tile"/>.</summary>
    public Tensor Run(Tensor input)
    {
        using var noGrad = no_grad();
        long h = input.shape[2], w = input.shape[3];
        if (Tile <= 0 || (h <= Tile && w <= Tile))
            return _network.forward(input);
        return RunTiled(input);
    }

    /// <summary>
    /// Each Tile×Tile block of the input is run with up to <see cref="Overlap"/> pixels of its neighbours around it,
    /// and only the block's own part of the output is kept (cropped, not blended): every output pixel then comes from
    /// one run that saw at least Overlap pixels of context each way, or the picture's real edge.
    /// </summary>
    Tensor RunTiled(Tensor input)
    {
        long h = input.shape[2], w = input.shape[3];
        // Tiles start on multiples of 4 so a pixel-unshuffling (×2, ×1) model folds the same pixel pairs as untiled.
        long tile = Math.Max(4, Tile / 4 * 4), overlap = (Overlap + 3) / 4 * 4;
        var output = zeros([input.shape[0], 3, h * Scale, w * Scale], input.dtype);
        for (long y0 = 0; y0 < h; y0 += tile)
        for (long x0 = 0; x0 < w; x0 += tile)
        {
            using var scope = NewDisposeScope();
            long y1 = Math.Min(y0 + tile, h), x1 = Math.Min(x0 + tile, w);
            long top = Math.Max(0, y0 - overlap), left = Math.Max(0, x0 - overlap);
            long bottom = Math.Min(h, y1 + overlap), right = Math.Min(w, x1 + overlap);
            var window = input.narrow(2, top, bottom - top).narrow(3, left, right - left);   // [B, 3, ≤ tile + 2·overlap, ...]
            var result = _network.forward(window);                                   // [B, 3, window·s]
            var kept = result.narrow(2, (y0 - top) * Scale, (y1 - y0) * Scale).narrow(3, (x0 - left) * Scale, (x1 - x0) * Scale);
            output.narrow(2, y0 * Scale, (y1 - y0) * Scale).narrow(3, x0 * Scale, (x1 - x0) * Scale).copy_(kept);
        }
        return output;
    }

    public void Dispose() => _network.Dispose();
}
