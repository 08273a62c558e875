using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SharpDiffusion.Models.T5;

/// <summary>
/// T5LayerNorm, an RMS norm without mean or bias: y = w · x / sqrt(mean(x², -1) + eps). The mean square is taken in
/// float32 whatever the compute dtype (half-precision squares overflow or lose the sum), and the normalised value is
/// cast back to a half-precision weight's dtype before the scale, as transformers does.
/// The weight lives in a bias-free <see cref="LayerNorm"/> registered under the norm's name, so the state-dict key is
/// transformers' (<c>...layer_norm.weight</c>) and the loader fills it like any layer's; only its weight is used.
/// </summary>
public sealed class T5LayerNorm
{
    readonly double _eps;

    public T5LayerNorm(long dim, double eps)
    {
        _eps = eps;
        // A layer built through Layers lands where a loader's placement puts layers (meta device while loading).
        using var placed = Layers.LayerNorm(dim, eps);
        Weights = nn.LayerNorm(dim, eps, elementwise_affine: true, bias: false, device: placed.weight!.device, dtype: placed.weight.dtype);
    }

    /// <summary>The module to register under the norm's name: it holds the weight [D].</summary>
    public LayerNorm Weights { get; }

    public Tensor Forward(Tensor x) // [..., D]
    {
        using var scope = NewDisposeScope();
        var variance = x.to(ScalarType.Float32).pow(2).mean([-1], keepdim: true);  // [..., 1] float32
        var normed = x * rsqrt(variance + _eps);                                    // float32
        var weight = Weights.weight!;
        if (weight.dtype is ScalarType.Float16 or ScalarType.BFloat16)
            normed = normed.to(weight.dtype);
        return (weight * normed).MoveToOuterDisposeScope();
    }
}
