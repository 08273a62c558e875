using static TorchSharp.torch;

namespace SharpDiffusion.Pipelines;

/// <summary>
/// How much memory a generation's activations need beyond the loaded weights, estimated from the model's widths and
/// the size before any work, so that a size the machine cannot hold is refused with the numbers instead of ending in
/// a failed native allocation. The factors count the tensors alive at the peak, with room to spare:
/// UNet: rows·N·C₀·24 (the skip connections of every level ≈ 5.5·C₀·N, a transformer block at the first level with
/// GEGLU's 8·C₀ projection, the resnet's norm and activation); VAE decode: B·C₀·H·W·6 at full resolution, or one
/// tile's worth with tiling, plus the float32 image.
/// </summary>
public sealed record MemoryEstimate(long UNetBytes, long DecodeBytes, long TiledDecodeBytes)
{
    const int UNetLiveTensors = 24, DecodeLiveTensors = 6;

    public long Peak(bool tiled) => Math.Max(UNetBytes, tiled ? TiledDecodeBytes : DecodeBytes);

    public static MemoryEstimate For(StableDiffusionPipeline pipe, int batch, bool guided, int width, int height)
    {
        long elem = ElementSize(pipe.DType);
        int f = pipe.VaeScaleFactor;
        long tokens = (long)(height / f) * (width / f);
        long unet = elem * (guided ? 2 * batch : batch) * tokens * pipe.Denoiser.FullResolutionChannels * UNetLiveTensors;
        long vaeWidth = pipe.Vae.Config.BlockOutChannels[0];
        long image = 3L * batch * height * width * sizeof(float) * 3; // decoded, clamped, permuted float32
        long decode = elem * batch * vaeWidth * height * width * DecodeLiveTensors + image;
        long tile = Math.Min(pipe.Vae.Config.SampleSize, Math.Max(width, height));
        long tiled = elem * batch * vaeWidth * tile * tile * DecodeLiveTensors + 2 * image; // tiles are blended into a copy
        return new MemoryEstimate(unet, decode, tiled);
    }

    /// <summary>Refuses a call whose activations cannot fit in <paramref name="available"/> bytes; turns on tiled decoding
    /// (with a warning) when only the whole-image decode does not fit.</summary>
    internal static bool NeedsTiling(MemoryEstimate estimate, long? available, int width, int height, ICollection<string> warnings)
    {
        if (available is not long free || estimate.Peak(tiled: false) <= free)
            return false;
        string G(long b) => Gigabytes(b);
        if (estimate.Peak(tiled: true) > free)
            throw new InsufficientMemoryException($"A {width}x{height} generation needs about {G(estimate.Peak(tiled: true))} for its activations " +
                $"(UNet {G(estimate.UNetBytes)}, tiled VAE decode {G(estimate.TiledDecodeBytes)}) but {G(free)} is available; " +
                "use a smaller size or fewer images, or bfloat16 compute.");
        warnings.Add($"Decoding a {width}x{height} image whole needs about {G(estimate.DecodeBytes)} but {G(free)} is available: decoded in tiles instead (VAE tiling).");
        return true;
    }

    /// <summary>Memory the system can give without swapping (Linux MemAvailable), else what .NET sees; null if unknown.</summary>
    public static long? AvailableBytes()
    {
        const string meminfo = "/proc/meminfo";
        if (File.Exists(meminfo))
            foreach (var line in File.ReadLines(meminfo))
                if (line.StartsWith("MemAvailable:", StringComparison.Ordinal)
                    && long.TryParse(line["MemAvailable:".Length..].Trim().Split(' ')[0], out long kb))
                    return kb * 1024;
        long total = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        return total > 0 ? total : null;
    }

    public static string Gigabytes(long bytes) => $"{bytes / 1e9:0.0} GB";

    static long ElementSize(ScalarType dtype) => dtype switch
    {
        ScalarType.Float64 => 8,
        ScalarType.Float16 or ScalarType.BFloat16 => 2,
        _ => 4,
    };
}
