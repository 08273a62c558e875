using static TorchSharp.torch;

namespace SharpDiffusion.Models.UNet;

/// <summary>
/// DeepCache (Ma, Fang, Wang 2023, "DeepCache: Accelerating Diffusion Models for Free"): between adjacent steps the
/// UNet's deep features barely change, so a full pass every <see cref="Interval"/> steps keeps the output of the
/// next-to-last up block, and the steps between run only the shallow path — conv_in, the first down block, the last up
/// block (fed that cached output and fresh skips) and the output head. One cache per generation (not shared).
/// </summary>
public sealed class DeepFeatureCache(int interval) : IDisposable
{
    Tensor? _features;

    /// <summary>A full UNet pass every this many steps (1 = every step: the cache changes nothing).</summary>
    public int Interval { get; } = interval >= 1 ? interval : throw new ArgumentException($"The DeepCache interval must be 1 or more; got {interval}.");

    /// <summary>Whether step <paramref name="step"/> (0-based) may reuse the cached features instead of a full pass.</summary>
    public bool CanReuse(int step) => _features is not null && step % Interval != 0;

    /// <summary>The next-to-last up block's output of the last full pass: [B, C, h, w] at the latent size.</summary>
    internal Tensor Features => _features ?? throw new InvalidOperationException("No features cached yet: the first step is a full pass.");

    /// <summary>Keeps a copy of <paramref name="features"/> beyond the pass's dispose scope (the previous one is freed).</summary>
    internal void Store(Tensor features)
    {
        _features?.Dispose();
        _features = features.detach().DetachFromDisposeScope();
    }

    public void Dispose()
    {
        _features?.Dispose();
        _features = null;
    }
}
