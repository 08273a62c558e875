using static TorchSharp.torch;

namespace SharpDiffusion.Models.UNet;

/// <summary>
/// What the UNet is conditioned on besides the latents and the timestep. SD 1.x/2.x: the text embeddings that
/// cross-attention reads. (SDXL adds its pooled text embedding and size/crop time ids here, so new conditioning
/// does not change the UNet's or the denoising loop's signatures.) With classifier-free guidance the rows are
/// [uncond; cond]. The record does not own its tensors.
/// </summary>
public sealed record Conditioning(Tensor EncoderHiddenStates) // [B, T, cross_attention_dim]
{
    public long BatchSize => EncoderHiddenStates.shape[0];

    /// <summary>The same conditioning in another dtype (the UNet's compute dtype); a new tensor the caller disposes.</summary>
    public Conditioning To(ScalarType dtype) => new(EncoderHiddenStates.to(dtype));
}
