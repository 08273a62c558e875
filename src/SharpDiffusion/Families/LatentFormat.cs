using static TorchSharp.torch;

namespace SharpDiffusion.Families;

/// <summary>
/// The space a family's denoiser works in, as numbers: the VAE's latent channels and spatial factor (pixels per latent
/// pixel), the denoiser's patch size (latent pixels per token side: 1 for a UNet, 2 for SD3's transformer) and the map
/// between the VAE's sample z and the latents x the loop holds: x = (z − shift)·scale, z = x/scale + shift
/// (SD 1.x/2.x/XL: shift 0, scale 0.18215/0.13025; SD3: 1.5305 and 0.0609).
/// </summary>
public sealed record LatentFormat(int Channels, int SpatialFactor, double ScalingFactor, double ShiftFactor = 0, int PatchSize = 1)
{
    /// <summary>Sizes in pixels must be multiples of this: one whole token, and at least 8 (diffusers' default).</summary>
    public int SizeMultiple => Math.Max(8, SpatialFactor * PatchSize);

    /// <summary>The latents of a batch of <paramref name="width"/>×<paramref name="height"/> images: [B, C, H/f, W/f].</summary>
    public long[] Shape(long batch, int width, int height) => [batch, Channels, height / SpatialFactor, width / SpatialFactor];

    /// <summary>The VAE's sample z → the loop's latents: (z − shift)·scale.</summary>
    public Tensor FromVae(Tensor z) => ShiftFactor == 0 ? z * ScalingFactor : (z - ShiftFactor) * ScalingFactor;

    /// <summary>The loop's latents x → what the VAE decodes: x/scale + shift.</summary>
    public Tensor ToVae(Tensor x) => ShiftFactor == 0 ? x / ScalingFactor : x / ScalingFactor + ShiftFactor;
}
