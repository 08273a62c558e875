using static TorchSharp.torch;

namespace SharpDiffusion.Models.UNet;

/// <summary>
/// What the UNet is conditioned on besides the latents and the timestep. SD 1.x/2.x: the text embeddings that
/// cross-attention reads. SDXL adds its pooled text embedding and the six size/crop "time ids" (original height
/// and width, crop top and left, target height and width), so new conditioning does not change the UNet's or the
/// denoising loop's signatures. With classifier-free guidance the rows are [uncond; cond].
/// </summary>
public sealed record Conditioning(Tensor EncoderHiddenStates) : IDisposable // [B, T, cross_attention_dim]
{
    /// <summary>SDXL: the pooled, projected text embedding [B, P] (text_embeds).</summary>
    public Tensor? TextEmbeds { get; init; }
    /// <summary>SDXL: [B, 6] float: original (h, w), crop (top, left), target (h, w).</summary>
    public Tensor? TimeIds { get; init; }

    public long BatchSize => EncoderHiddenStates.shape[0];

    /// <summary>Disposes the tensors (for a conditioning that owns them).</summary>
    public void Dispose()
    {
        EncoderHiddenStates.Dispose();
        TextEmbeds?.Dispose();
        TimeIds?.Dispose();
    }
}
