using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpDiffusion.Models.Transformers;

/// <summary>
/// diffusers' JointTransformerBlock (MMDiT): two token streams, image x and text c, each with its own adaLN-Zero
/// modulation from the conditioning vector, attending jointly:
/// x += gate_msa · attn_x;  [SD3.5 dual attention: x += gate_msa2 · attn2(norm_x2)];
/// x += gate_mlp · ff(layer_norm(x) · (1 + scale_mlp) + shift_mlp); the same for c with its own gates and ff_context.
/// The last block (context_pre_only) only lets the text condition the image: its text norm is AdaLayerNormContinuous and
/// it returns no text stream.
/// </summary>
public sealed class JointTransformerBlock : Module
{
    readonly AdaLayerNormZero _norm1;
    readonly AdaLayerNormZero? _norm1Context;               // the text stream goes on
    readonly AdaLayerNormContinuous? _norm1ContextLast;      // context_pre_only (also "norm1_context" in the weights)
    readonly JointAttention _attn;
    readonly JointAttention? _attn2;
    readonly GeluFeedForward _ff;
    readonly GeluFeedForward? _ffContext;

    public bool ContextPreOnly { get; }

    public JointTransformerBlock(int dim, int heads, int headDim, bool contextPreOnly, bool qkRmsNorm, bool dualAttention)
        : base(nameof(JointTransformerBlock))
    {
        ContextPreOnly = contextPreOnly;
        _norm1 = new AdaLayerNormZero(dim, dual: dualAttention);
        if (contextPreOnly) _norm1ContextLast = new AdaLayerNormContinuous(dim, dim);
        else _norm1Context = new AdaLayerNormZero(dim, dual: false);
        _attn = new JointAttention(dim, heads, headDim, hasContext: true, contextPreOnly, qkRmsNorm);
        register_module("norm1", _norm1);
        register_module("norm1_context", (Module?)_norm1Context ?? _norm1ContextLast!);
        register_module("attn", _attn);
        if (dualAttention)
        {
            _attn2 = new JointAttention(dim, heads, headDim, hasContext: false, contextPreOnly: false, qkRmsNorm);
            register_module("attn2", _attn2);
        }
        _ff = new GeluFeedForward(dim);
        register_module("ff", _ff);
        if (!contextPreOnly)
        {
            _ffContext = new GeluFeedForward(dim);
            register_module("ff_context", _ffContext);
        }
    }

    /// <param name="hidden">image tokens [B, N, D].</param>
    /// <param name="context">text tokens [B, M, D].</param>
    /// <param name="temb">the conditioning vector [B, D].</param>
    /// <returns>both streams after the block; Context is null after the last block.</returns>
    public (Tensor Hidden, Tensor? Context) Forward(Tensor hidden, Tensor context, Tensor temb)
    {
        using var scope = NewDisposeScope();
        var x = _norm1.call(hidden, temb);
        var c = _norm1Context?.call(context, temb);
        var normedContext = c?.Normed ?? _norm1ContextLast!.call(context, temb);

        var (attnOut, contextAttnOut) = _attn.Forward(x.Normed, normedContext);
        hidden = hidden + Gated(x.GateMsa, attnOut);
        if (_attn2 is not null)
            hidden = Reuse.Add(Gated(x.GateMsa2!, _attn2.Forward(x.Normed2!, null).Hidden), hidden);
        var ffIn = Modulation.Apply(Modulation.Norm(hidden), x.ShiftMlp, x.ScaleMlp);
        hidden = Reuse.Add(Gated(x.GateMlp, _ff.call(ffIn)), hidden);

        if (c is null)
            return (hidden.MoveToOuterDisposeScope(), null);
        context = context + Gated(c.GateMsa, contextAttnOut!);
        var ffContextIn = Modulation.Apply(Modulation.Norm(context), c.ShiftMlp, c.ScaleMlp);
        context = Reuse.Add(Gated(c.GateMlp, _ffContext!.call(ffContextIn)), context);
        return (hidden.MoveToOuterDisposeScope(), context.MoveToOuterDisposeScope());
    }

    static Tensor Gated(Tensor gate, Tensor output) => Reuse.Mul(output, gate.unsqueeze(1)); // gate [B, D], output [B, N, D]
}
