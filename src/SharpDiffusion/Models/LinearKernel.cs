using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpDiffusion.Models;

/// <summary>
/// Two ways to compute a linear layer, y = x Wᵀ + b, with the same result to float32 rounding. Which is faster depends on
/// the CPU (issue 24: on an AVX-512 EPYC, MKL's sgemm ran at 124 GFLOP/s while oneDNN's channels-last convs ran at 290;
/// on an AVX2 EPYC they were even), so <see cref="Tuning.FastPaths"/> measures it. The weight stays a normal [out, in]
/// parameter either way: only the product's kernel differs, so loading, LoRA merges, side branches and autograd see
/// the same layer.
/// </summary>
public enum LinearKernel
{
    /// <summary>torch.nn.functional.linear: addmm, on the CPU MKL's sgemm (float32) as nn.Linear computes it.</summary>
    Default,
    /// <summary>The same product as a 1×1 convolution on a channels-last view of x (no copy), which libtorch hands to
    /// oneDNN's GEMM; float32 on the CPU only, other dtypes and devices take <see cref="Default"/>. libtorch keeps small
    /// convolutions (a few thousand values of x) on its own conv, the same product to rounding.</summary>
    OneDnn,
}

public static class LinearKernels
{
    /// <summary>x Wᵀ + b for x [..., in], <paramref name="weight"/> [out, in], <paramref name="bias"/> [out] → [..., out].</summary>
    public static Tensor Linear(LinearKernel kernel, Tensor x, Tensor weight, Tensor? bias) =>
        kernel == LinearKernel.OneDnn && Applies(x, weight) ? AsConvolution(x, weight, bias) : F.linear(x, weight, bias);

    /// <summary>Whether <see cref="LinearKernel.OneDnn"/> computes this call (else it is <see cref="LinearKernel.Default"/>'s):
    /// float32 input and weight on the CPU, some rows to multiply.</summary>
    public static bool Applies(Tensor x, Tensor weight) =>
        x.dtype == ScalarType.Float32 && weight.dtype == ScalarType.Float32 && x.device_type == TorchSharp.DeviceType.CPU
        && weight.device_type == TorchSharp.DeviceType.CPU && x.dim() >= 1 && x.numel() > 0 && weight.dim() == 2;

    /// <summary>x [N, in] as an image of N×1 pixels with `in` channels, in channels-last order: [1, in, N, 1] with strides
    /// [N·in, 1, in, in] is x's own memory (NHWC). The weight [out, in] is the 1×1 kernel [out, in, 1, 1]. The output
    /// [1, out, N, 1] comes back channels-last, i.e. rows [N, out] in memory, which the final permute and reshape only view.
    /// Any dtype (bench's roofline times bf16 too); <see cref="Linear"/> takes it for float32 only.</summary>
    public static Tensor AsConvolution(Tensor x, Tensor weight, Tensor? bias)
    {
        using var scope = NewDisposeScope();
        long inFeatures = x.shape[^1], outFeatures = weight.shape[0];
        if (weight.shape[1] != inFeatures) return F.linear(x, weight, bias).MoveToOuterDisposeScope(); // libtorch names the mismatch
        long[] outShape = [.. x.shape[..^1], outFeatures];
        var rows = x.reshape(-1, inFeatures).contiguous();                     // [N, in]: x itself when x is contiguous
        var image = ChannelsLastImage(rows);                                   // [1, in, N, 1], NHWC strides: no copy
        var kernel = weight.reshape(outFeatures, inFeatures, 1, 1);            // [out, in, 1, 1]: a view of the parameter
        var y = F.conv2d(image, kernel, bias);                                 // [1, out, N, 1], channels-last
        return y.permute(0, 2, 3, 1).reshape(outShape).MoveToOuterDisposeScope(); // [..., out]
    }

    /// <summary>Contiguous rows [N, in] seen as [1, in, N, 1] with strides [N·in, 1, in, in] (NHWC): the same memory.</summary>
    public static Tensor ChannelsLastImage(Tensor rows) => rows.view(1, rows.shape[0], 1, rows.shape[1]).permute(0, 3, 1, 2);
}
