using static TorchSharp.torch;

namespace SharpDiffusion.Pipelines;

/// <summary>
/// What a task hands the shared loop: its initial latents [B, C, h, w] float32 (the loop takes them over), the
/// timesteps to visit and its per-step hook. Disposing it frees what the hook keeps (masks, image latents).
/// </summary>
public sealed record DenoisingStart(Tensor Latents, IReadOnlyList<float> Timesteps, IStepHook? Hook = null) : IDisposable
{
    public void Dispose() => (Hook as IDisposable)?.Dispose();
}
