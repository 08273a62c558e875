using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpDiffusion.Models;

/// <summary>
/// Two ways to compute softmax(q·kᵀ/√d)·v with the same result to rounding. Which is faster depends on the CPU, the
/// head size and the token counts (<see cref="Tuning.FastPaths"/> measures it).
/// </summary>
public enum AttentionKernel
{
    /// <summary>libtorch's scaled_dot_product_attention (on CPU a fused, blocked flash-attention kernel).</summary>
    Sdpa,
    /// <summary>Scores as batched matmuls (GEMM), softmax, then a second batched matmul, a few heads at a time so
    /// the scores stay under 64 MB (diffusers' sliced attention).</summary>
    SlicedMatmul,
}

/// <summary>Picks the kernel for q [B, H, N, d] and k [B, H, M, d].</summary>
public delegate AttentionKernel AttentionKernelChoice(Tensor q, Tensor k);

public static class AttentionKernels
{
    const long ScoreBudget = 16L << 20; // elements of one slice's scores [slice, N, M]

    /// <summary>softmax(q·kᵀ/√d)·v for q [B, H, N, d], k and v [B, H, M, d] → [B, H, N, d].</summary>
    public static Tensor Attend(AttentionKernel kernel, Tensor q, Tensor k, Tensor v) => kernel switch
    {
        AttentionKernel.SlicedMatmul => Sliced(q, k, v),
        _ => F.scaled_dot_product_attention(q, k, v),
    };

    static Tensor Sliced(Tensor q, Tensor k, Tensor v)
    {
        using var scope = NewDisposeScope();
        long b = q.shape[0], h = q.shape[1], n = q.shape[2], d = q.shape[3], m = k.shape[2];
        var q3 = (q * (1.0 / Math.Sqrt(d))).reshape(b * h, n, d); // the scale on q: N·d products instead of N·M
        var k3 = k.reshape(b * h, m, d).transpose(1, 2);        // [BH, d, M]
        var v3 = v.reshape(b * h, m, d);
        var output = empty([b * h, n, d], dtype: q.dtype, device: q.device);
        long slice = Math.Clamp(ScoreBudget / Math.Max(1, n * m), 1, b * h);
        for (long i = 0; i < b * h; i += slice)
        {
            using var inner = NewDisposeScope();
            long count = Math.Min(slice, b * h - i);
            var scores = bmm(q3.narrow(0, i, count), k3.narrow(0, i, count)); // [slice, N, M]
            // bf16/fp16 scores are normalised in float32, as the fused kernel accumulates them.
            var weights = q.dtype is ScalarType.Float32 or ScalarType.Float64 ? scores.softmax(-1) : scores.softmax(-1, ScalarType.Float32).to(q.dtype);
            output.narrow(0, i, count).copy_(bmm(weights, v3.narrow(0, i, count)));
        }
        return output.view(b, h, n, d).MoveToOuterDisposeScope();
    }
}
