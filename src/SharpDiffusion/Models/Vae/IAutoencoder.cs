using static TorchSharp.torch;

namespace SharpDiffusion.Models.Vae;

/// <summary>
/// What a pipeline needs from a VAE (<see cref="AutoencoderKL"/>, <see cref="AutoencoderTiny"/>): pixels [B, 3, H, W] in
/// [−1, 1] to latents and back, both before the latent format's scaling factor.
/// </summary>
public interface IAutoencoder
{
    /// <summary>Channels of the latents it makes and takes.</summary>
    int LatentChannels { get; }

    /// <summary>Pixels per latent along each side.</summary>
    int SpatialFactor { get; }

    /// <summary>Image [B, 3, H, W] → one sample of the latents [B, C, H/f, W/f]: a posterior draw from
    /// <paramref name="generator"/> (AutoencoderKL) or the encoder's output (TAESD draws nothing).</summary>
    Tensor EncodeSample(Tensor image, Generator? generator);

    /// <summary>Latents [B, C, h, w] → image [B, 3, h·f, w·f], about [−1, 1], not clamped.</summary>
    Tensor Decode(Tensor z);
}
