using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpDiffusion.Models.Transformers;

/// <summary>
/// diffusers' FluxTransformerBlock (a BFL "double block"): image x and text c, each with its own adaLN-Zero modulation
/// from the conditioning vector, attend jointly as [c | x] with rotary positions (<see cref="FluxAttention"/>), then
/// x += gate_msa · attn_x;  x += gate_mlp · ff(layer_norm(x) · (1 + scale_mlp) + shift_mlp), and the same for c with its
/// own gates and ff_context. Every block keeps both streams (no context_pre_only, unlike SD3's last block).
/// </summary>
public sealed class FluxTransformerBlock : Module
{
    readonly AdaLayerNormZero _norm1, _norm1Context;
    readonly FluxAttention _attn;
    readonly GeluFeedForward _ff, _ffContext;

    public FluxTransformerBlock(int dim, int heads, int headDim) : base(nameof(FluxTransformerBlock))
    {
        _norm1 = new AdaLayerNormZero(dim, dual: false);
        _norm1Context = new AdaLayerNormZero(dim, dual: false);
        _attn = new FluxAttention(dim, heads, headDim, hasContext: true);
        _ff = new GeluFeedForward(dim);
        _ffContext = new GeluFeedForward(dim);
        register_module("norm1", _norm1);
        register_module("norm1_context", _norm1Context);
        register_module("attn", _attn);
        register_module("ff", _ff);
        register_module("ff_context", _ffContext);
    }

    /// <param name="hidden">image tokens [B, N, D].</param>
    /// <param name="context">text tokens [B, M, D].</param>
    /// <param name="temb">the conditioning vector [B, D].</param>
    /// <param name="rotary">cos, sin [M + N, d].</param>
    public (Tensor Hidden, Tensor Context) Forward(Tensor hidden, Tensor context, Tensor temb, (Tensor Cos, Tensor Sin) rotary)
    {
        using var scope = NewDisposeScope();
        var x = _norm1.call(hidden, temb);
        var c = _norm1Context.call(context, temb);
        var (attnOut, contextAttnOut) = _attn.Forward(x.Normed, c.Normed, rotary);

        hidden = hidden + Gated(x.GateMsa, attnOut);
        var ffIn = Modulation.Apply(Modulation.Norm(hidden), x.ShiftMlp, x.ScaleMlp);
        hidden = Reuse.Add(Gated(x.GateMlp, _ff.call(ffIn)), hidden);

        context = context + Gated(c.GateMsa, contextAttnOut!);
        var ffContextIn = Modulation.Apply(Modulation.Norm(context), c.ShiftMlp, c.ScaleMlp);
        context = Reuse.Add(Gated(c.GateMlp, _ffContext.call(ffContextIn)), context);
        if (context.dtype == ScalarType.Float16) context = context.clamp(-65504, 65504); // as diffusers: T5's text overflows float16
        return (hidden.MoveToOuterDisposeScope(), context.MoveToOuterDisposeScope());
    }

    static Tensor Gated(Tensor gate, Tensor output) => Reuse.Mul(output, gate.unsqueeze(1)); // gate [B, D], output [B, N, D]
}
