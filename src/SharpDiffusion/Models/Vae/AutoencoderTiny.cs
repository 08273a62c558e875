using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpDiffusion.Models.Vae;

/// <summary>
/// Tiny AutoEncoder for Stable Diffusion (TAESD, madebyollin; diffusers' AutoencoderTiny): a small deterministic
/// stand-in for the model's VAE, decoding in a fraction of the time (previews, few-step models). Encode gives the latents
/// themselves (no posterior); decode soft-clamps them to ±3 (latent_magnitude) first. scaling_factor is 1: TAESD's
/// latents are already the denoiser's. taesd/taesdxl: 4 channels, taesd3/taef1: 16.
/// </summary>
public sealed class AutoencoderTiny : Module, IAutoencoder
{
    readonly EncoderTiny? encoder;
    readonly DecoderTiny decoder;

    public AutoencoderTinyConfig Config { get; }

    /// <summary>Where the weights came from, for error messages (a file or folder).</summary>
    public string Source { get; }

    public AutoencoderTiny(AutoencoderTinyConfig config, string source = "AutoencoderTiny") : base(nameof(AutoencoderTiny))
    {
        Config = config;
        Source = source;
        if (config.HasEncoder)
        {
            encoder = new EncoderTiny(config);
            register_module("encoder", encoder);
        }
        decoder = new DecoderTiny(config);
        register_module("decoder", decoder);
    }

    internal EncoderTiny? EncoderModule => encoder;
    internal DecoderTiny DecoderModule => decoder;

    public int LatentChannels => Config.LatentChannels;
    public int SpatialFactor => Config.SpatialFactor;

    /// <summary>Image [B, 3, H, W] in [−1, 1] → latents [B, C, H/f, W/f] (diffusers' <c>encode(x).latents</c>).</summary>
    public Tensor Encode(Tensor image)
    {
        if (encoder is null)
            throw new InvalidOperationException($"{Source}: this TAESD has no encoder (img2img needs one); put the matching taesd_encoder file next to the decoder.");
        int f = SpatialFactor;
        if (image.shape[2] % f != 0 || image.shape[3] % f != 0)
            throw new ArgumentException($"{Source}: image size {image.shape[3]}x{image.shape[2]} is not a multiple of the VAE factor {f}.");
        return encoder.call(image);
    }

    /// <summary>Latents [B, C, h, w] → image [B, 3, h·f, w·f] (diffusers' <c>decode(z).sample</c>).</summary>
    public Tensor Decode(Tensor z)
    {
        if (z.shape[1] != LatentChannels)
            throw new ArgumentException($"{Source}: latents have {z.shape[1]} channels, this TAESD takes {LatentChannels}.");
        return decoder.call(z);
    }

    public Tensor EncodeSample(Tensor image, Generator? generator) => Encode(image);
}
