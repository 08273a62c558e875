using static TorchSharp.torch;

namespace SharpDiffusion.Models.ControlNet;

/// <summary>What a ControlNet adds to a UNet: one tensor per skip connection of the down path (diffusers'
/// down_block_additional_residuals, in the order the skips are made) and one to the mid block's output
/// (mid_block_additional_residual). Owns its tensors.</summary>
public sealed class ControlNetResiduals(IReadOnlyList<Tensor> down, Tensor mid) : IDisposable
{
    public IReadOnlyList<Tensor> Down { get; } = down;
    public Tensor Mid { get; } = mid;

    /// <summary>Several ControlNets at once: their residuals summed (diffusers' MultiControlNetModel).</summary>
    public static ControlNetResiduals Sum(ControlNetResiduals a, ControlNetResiduals b)
    {
        if (a.Down.Count != b.Down.Count)
            throw new ArgumentException($"ControlNets disagree on the number of residuals ({a.Down.Count} and {b.Down.Count}); they must be made for the same UNet.");
        return new(a.Down.Zip(b.Down, (x, y) => x + y).ToList(), a.Mid + b.Mid);
    }

    /// <summary>Residual i × factors[i] (the down ones in order, the mid one last): new tensors, these are kept.</summary>
    public ControlNetResiduals Scaled(IReadOnlyList<double> factors)
    {
        if (factors.Count != Down.Count + 1)
            throw new ArgumentException($"ControlNet residuals: {factors.Count} factors for {Down.Count} down residuals and the mid one.");
        return new(Down.Select((t, i) => t * factors[i]).ToList(), Mid * factors[^1]);
    }

    /// <summary>Zeros for <paramref name="before"/> rows, then these rows (guess mode: the unconditional rows get nothing).</summary>
    public ControlNetResiduals PadRowsBefore(long before)
    {
        static Tensor Pad(Tensor t, long n) => cat([zeros(n, t.shape[1], t.shape[2], t.shape[3], dtype: t.dtype, device: t.device), t], 0);
        return new(Down.Select(t => Pad(t, before)).ToList(), Pad(Mid, before));
    }

    /// <summary>Every tensor moved to the dispose scope around the current one (returned from a scoped computation).</summary>
    public ControlNetResiduals MoveToOuterDisposeScope()
    {
        foreach (var t in Down) t.MoveToOuterDisposeScope();
        Mid.MoveToOuterDisposeScope();
        return this;
    }

    public void Dispose()
    {
        foreach (var t in Down) t.Dispose();
        Mid.Dispose();
    }
}
