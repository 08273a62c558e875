using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace SharpDiffusion.Models.Transformers;

/// <summary>
/// diffusers' AdaLayerNormZeroSingle (Flux's single blocks): [shift | scale | gate] = linear(silu(emb)), the input
/// modulated as layer_norm(x) · (1 + scale) + shift (no affine parameters, eps 1e-6); the gate scales the block's output.
/// </summary>
public sealed class AdaLayerNormZeroSingle : Module<Tensor, Tensor, (Tensor Normed, Tensor Gate)>
{
    readonly Linear _linear;

    public AdaLayerNormZeroSingle(int dim) : base(nameof(AdaLayerNormZeroSingle))
    {
        _linear = Layers.CompactLinear(dim, 3 * dim);
        register_module("linear", _linear);
    }

    public override (Tensor Normed, Tensor Gate) forward(Tensor x, Tensor emb) // x [B, N, D], emb [B, D] → [B, N, D], gate [B, D]
    {
        using var scope = NewDisposeScope();
        var c = _linear.call(F.silu(emb)).chunk(3, 1);
        var normed = Modulation.Apply(Modulation.Norm(x), shift: c[0], scale: c[1]);
        return (normed.MoveToOuterDisposeScope(), c[2].MoveToOuterDisposeScope());
    }
}
