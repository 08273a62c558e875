using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpDiffusion.Models;

/// <summary>
/// Tensor layouts for speed. libtorch's CPU convolution takes the oneDNN channels-last path when the weight (or
/// input) has NHWC strides, and its output keeps them; that path is about twice as fast here as the default.
/// TorchSharp has no memory_format argument, but permute → contiguous → permute produces exactly those strides.
/// </summary>
public static class MemoryLayout
{
    /// <summary>The same values with channels-last (NHWC) strides; 4-d tensors only.</summary>
    public static Tensor ToChannelsLast(Tensor t)
    {
        using var nhwc = t.permute(0, 2, 3, 1);
        using var packed = nhwc.contiguous();
        return packed.permute(0, 3, 1, 2); // a view: keeps the packed storage alive, not the input's
    }

    /// <summary>New memory of <paramref name="shape"/> [N, C, H, W] with channels-last strides.</summary>
    public static Tensor EmptyChannelsLast(long[] shape, ScalarType dtype, Device device)
    {
        using var nhwc = empty([shape[0], shape[2], shape[3], shape[1]], dtype, device);
        return nhwc.permute(0, 3, 1, 2); // a view: keeps the storage alive
    }
}
