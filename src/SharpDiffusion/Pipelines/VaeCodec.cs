using SharpDiffusion.Families;
using SharpDiffusion.Loading;
using SharpDiffusion.Models.Vae;
using static TorchSharp.torch;

namespace SharpDiffusion.Pipelines;

/// <summary>
/// The VAE between pixels and the loop's latents, in the family's <see cref="LatentFormat"/> (scale and shift): images
/// [B, 3, H, W] in [−1, 1] → latents [B, C, H/f, W/f] and back. Its dtype is float32 when a float16 model's VAE must be
/// upcast (force_upcast).
/// </summary>
public sealed class VaeCodec(ComponentWeights weights, LatentFormat format, Device device, ScalarType dtype)
{
    public ComponentWeights Weights => weights;
    public AutoencoderKL Model => (AutoencoderKL)weights.Module;
    public LatentFormat Format => format;
    /// <summary>The VAE's dtype: float32 when a float16 model's VAE was upcast, else the compute dtype.</summary>
    public ScalarType DType { get; } = weights.Module.parameters().FirstOrDefault()?.dtype ?? dtype;

    /// <summary>Image [1, 3, H, W] in [−1, 1] → the format's latents of one sample of the VAE posterior, [1, C, h, w] float32
    /// (diffusers' retrieve_latents(sample_mode="sample") with the pipeline generator: one draw).</summary>
    public Tensor Encode(Tensor image, Generator generator)
    {
        using var scope = NewDisposeScope();
        using var use = weights.Use();
        using var posterior = Model.Encode(image.to(DType).to(device));
        var sample = posterior.Sample(generator).to(ScalarType.Float32);
        return format.FromVae(sample).MoveToOuterDisposeScope();
    }

    /// <summary>Latents → image in [0, 1], [B, H, W, 3] float32 on the CPU; <paramref name="tiled"/> decodes in overlapping tiles.</summary>
    public Tensor Decode(Tensor latents, bool tiled = false)
    {
        using var scope = NewDisposeScope();
        using var use = weights.Use();
        var z = format.ToVae(latents).to(DType);
        var decoded = (tiled ? TiledDecoder.Decode(Model, z) : Model.Decode(z)).to(ScalarType.Float32);
        var image = (decoded / 2 + 0.5).clamp(0.0, 1.0);
        return image.permute(0, 2, 3, 1).contiguous().cpu().MoveToOuterDisposeScope();
    }
}
