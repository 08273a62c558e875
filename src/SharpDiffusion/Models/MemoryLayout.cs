using TorchSharp.Modules;
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

    public static bool IsChannelsLast(Tensor t) =>
        t.dim() == 4 && t.stride(1) == 1 && t.stride(3) == t.shape[1] && t.stride(2) == t.shape[1] * t.shape[3];

    /// <summary>Gives every 2-d convolution weight of <paramref name="model"/> channels-last strides.</summary>
    public static void UseChannelsLast(Module model)
    {
        using var _ = no_grad();
        foreach (var (_, module) in model.named_modules())
        {
            if (module is not Conv2d conv || conv.weight is not { } w || w.dim() != 4 || IsChannelsLast(w)) continue;
            var converted = ToChannelsLast(w);
            conv.weight = new Parameter(converted, requires_grad: w.requires_grad);
            w.Dispose();
        }
    }
}
