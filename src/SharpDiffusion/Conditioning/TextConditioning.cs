using static TorchSharp.torch;

namespace SharpDiffusion.Conditioning;

/// <summary>
/// What a denoiser is conditioned on besides the latents and the timestep, the same record for every family:
/// the text embeddings that attention reads [B, T, D] (SD 1.x/2.x: CLIP's; SDXL: CLIP-L ‖ bigG; SD3: the CLIP pair
/// padded and joined with T5's tokens), a pooled embedding [B, P] (SDXL's text_embeds, SD3's pooled_projections) and
/// added conditioning numbers [B, k] (SDXL's six size/crop time ids). New conditioning therefore changes neither a
/// model's nor the denoising loop's signature. With classifier-free guidance the rows are [uncond; cond].
/// </summary>
public sealed record TextConditioning(Tensor EncoderHiddenStates) : IDisposable // [B, T, D]
{
    /// <summary>The pooled text embedding [B, P]: SDXL's text_embeds (the second encoder's projection), SD3's pooled_projections.</summary>
    public Tensor? Pooled { get; init; }
    /// <summary>SDXL's added time ids [B, 6] float: original (h, w), crop (top, left), target (h, w).</summary>
    public Tensor? TimeIds { get; init; }
    /// <summary>LCM-distilled UNets' timestep_cond [B, time_cond_proj_dim]: the guidance scale embedding (no CFG batch).</summary>
    public Tensor? TimestepCond { get; init; }

    public long BatchSize => EncoderHiddenStates.shape[0];

    /// <summary>Rows [start, start + count) of every tensor, as views (for a denoiser that runs the guidance halves apart).</summary>
    public TextConditioning Rows(long start, long count) => new(EncoderHiddenStates.narrow(0, start, count))
    {
        Pooled = Pooled?.narrow(0, start, count),
        TimeIds = TimeIds?.narrow(0, start, count),
        TimestepCond = TimestepCond?.narrow(0, start, count),
    };

    /// <summary>Disposes the tensors (for a conditioning that owns them).</summary>
    public void Dispose()
    {
        EncoderHiddenStates.Dispose();
        Pooled?.Dispose();
        TimeIds?.Dispose();
        TimestepCond?.Dispose();
    }
}
