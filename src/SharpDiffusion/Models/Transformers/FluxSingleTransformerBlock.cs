using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace SharpDiffusion.Models.Transformers;

/// <summary>
/// diffusers' FluxSingleTransformerBlock (a BFL "single block"), over the joined tokens [text | image]: one modulated
/// input y = layer_norm(h)·(1 + scale) + shift feeds attention and an MLP side by side, and
/// h += gate · proj_out([attn(y) ‖ gelu_tanh(proj_mlp(y))]), the MLP 4·D wide.
/// </summary>
public sealed class FluxSingleTransformerBlock : Module
{
    readonly AdaLayerNormZeroSingle _norm;
    readonly Linear _projMlp, _projOut;
    readonly FluxAttention _attn;

    public FluxSingleTransformerBlock(int dim, int heads, int headDim, int mlpRatio = 4) : base(nameof(FluxSingleTransformerBlock))
    {
        _norm = new AdaLayerNormZeroSingle(dim);
        _projMlp = Layers.CompactLinear(dim, mlpRatio * dim);
        _projOut = Layers.CompactLinear(dim + mlpRatio * dim, dim);
        _attn = new FluxAttention(dim, heads, headDim, hasContext: false);
        register_module("norm", _norm);
        register_module("proj_mlp", _projMlp);
        register_module("proj_out", _projOut);
        register_module("attn", _attn);
    }

    /// <param name="hidden">[B, M + N, D] text then image tokens.</param>
    /// <param name="temb">the conditioning vector [B, D].</param>
    /// <param name="rotary">cos, sin [M + N, d].</param>
    public Tensor Forward(Tensor hidden, Tensor temb, (Tensor Cos, Tensor Sin) rotary)
    {
        using var scope = NewDisposeScope();
        var (normed, gate) = _norm.call(hidden, temb);
        var mlp = F.gelu(_projMlp.call(normed), TorchSharp.Modules.GELU.Approximate.tanh);            // [B, S, 4D]
        var attn = _attn.Forward(normed, null, rotary).Hidden;                      // [B, S, D]
        var output = Reuse.Mul(_projOut.call(cat([attn, mlp], 2)), gate.unsqueeze(1));
        output = Reuse.Add(output, hidden);
        if (output.dtype == ScalarType.Float16) output = output.clamp(-65504, 65504);
        return output.MoveToOuterDisposeScope();
    }
}
