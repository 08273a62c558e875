using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Loading;

/// <summary>Bit-for-bit comparison of tensors (TorchSharp's Tensor.equal is element-wise).</summary>
public static class Exactly
{
    /// <summary>Same shape, same dtype, every element equal.</summary>
    public static bool Same(Tensor actual, Tensor expected)
    {
        if (!actual.shape.SequenceEqual(expected.shape) || actual.dtype != expected.dtype) return false;
        using var equal = actual.eq(expected).all();
        return equal.item<bool>();
    }
}
