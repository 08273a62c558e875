using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpDiffusion.Models.Transformers;

/// <summary>
/// diffusers' Attention with JointAttnProcessor2_0 (SD3's MMDiT): the image tokens (to_q/k/v) and, when the block has a
/// context stream, the text tokens (add_q/k/v_proj) are projected separately, optionally RMS-normalised per head
/// (qk_norm "rms_norm": norm_q/k, norm_added_q/k), then attend together as one sequence [image | text]; the result is split
/// back, image through to_out.0 and text through to_add_out (absent in the last block, context_pre_only, whose text output
/// is dropped). Without a context stream it is plain self-attention (SD3.5's attn2). All projections have biases.
/// </summary>
public sealed class JointAttention : Module, IAttentionModule
{
    readonly Linear _toQ, _toK, _toV, _toOut;
    readonly Linear? _addQ, _addK, _addV, _toAddOut;
    readonly RmsNorm? _normQ, _normK, _normAddedQ, _normAddedK;
    readonly AttentionHooks _attentionHooks = new();
    readonly int _heads;

    /// <param name="hasContext">whether text tokens join (attn), or not (attn2).</param>
    /// <param name="contextPreOnly">the last block: the text output is not computed (no to_add_out).</param>
    /// <param name="qkRmsNorm">qk_norm "rms_norm" (eps 1e-6, over each head's channels).</param>
    public JointAttention(int dim, int heads, int headDim, bool hasContext, bool contextPreOnly, bool qkRmsNorm) : base("Attention")
    {
        _heads = heads;
        int inner = heads * headDim;
        (_toQ, _toK, _toV) = (Layers.CompactLinear(dim, inner), Layers.CompactLinear(dim, inner), Layers.CompactLinear(dim, inner));
        register_module("to_q", _toQ);
        register_module("to_k", _toK);
        register_module("to_v", _toV);
        if (qkRmsNorm)
        {
            (_normQ, _normK) = (new RmsNorm(headDim, 1e-6), new RmsNorm(headDim, 1e-6));
            register_module("norm_q", _normQ);
            register_module("norm_k", _normK);
        }
        if (hasContext)
        {
            (_addQ, _addK, _addV) = (Layers.CompactLinear(dim, inner), Layers.CompactLinear(dim, inner), Layers.CompactLinear(dim, inner));
            register_module("add_q_proj", _addQ);
            register_module("add_k_proj", _addK);
            register_module("add_v_proj", _addV);
            if (qkRmsNorm)
            {
                (_normAddedQ, _normAddedK) = (new RmsNorm(headDim, 1e-6), new RmsNorm(headDim, 1e-6));
                register_module("norm_added_q", _normAddedQ);
                register_module("norm_added_k", _normAddedK);
            }
            if (!contextPreOnly)
            {
                _toAddOut = Layers.CompactLinear(inner, dim);
                register_module("to_add_out", _toAddOut);
            }
        }
        _toOut = Layers.CompactLinear(inner, dim);
        // to_out is [Linear, Dropout] in diffusers: the Linear is "to_out.0".
        register_module("to_out", new ModuleList<Module>(_toOut, Dropout(0.0)));
    }

    /// <summary>Which kernel computes the attention products (set when the model is loaded); null: SDPA.</summary>
    public AttentionKernelChoice? KernelChoice { get; set; }

    public IDisposable RegisterAttentionHook(Action<Tensor, Tensor> hook) => _attentionHooks.Add(hook);

    /// <param name="x">image tokens [B, N, D].</param>
    /// <param name="context">text tokens [B, M, D], or null for self-attention.</param>
    /// <returns>the image tokens' output [B, N, D] and the text tokens' [B, M, D] (null without context or in the last block).</returns>
    public (Tensor Hidden, Tensor? Context) Forward(Tensor x, Tensor? context)
    {
        using var scope = NewDisposeScope();
        var q = Heads(_toQ.call(x), _normQ);
        var k = Heads(_toK.call(x), _normK);
        var v = Heads(_toV.call(x), null);
        if (context is not null)
        {
            if (_addQ is null) throw new InvalidOperationException("This attention (attn2) has no context projections; call it without context.");
            q = cat([q, Heads(_addQ.call(context), _normAddedQ)], 2); // [B, H, N + M, d]
            k = cat([k, Heads(_addK!.call(context), _normAddedK)], 2);
            v = cat([v, Heads(_addV!.call(context), null)], 2);
        }
        _attentionHooks.Call(q, k);
        var attended = AttentionKernels.Attend(KernelChoice?.Invoke(q, k) ?? AttentionKernel.Sdpa, q, k, v); // [B, H, N + M, d]
        long b = attended.shape[0], n = x.shape[1];
        var merged = attended.transpose(1, 2).reshape(b, attended.shape[2], -1).to(q.dtype); // [B, N + M, H·d]
        var hidden = _toOut.call(merged.narrow(1, 0, n)).MoveToOuterDisposeScope();
        Tensor? contextOut = context is not null && _toAddOut is not null
            ? _toAddOut.call(merged.narrow(1, n, merged.shape[1] - n)).MoveToOuterDisposeScope()
            : null;
        return (hidden, contextOut);
    }

    Tensor Heads(Tensor t, RmsNorm? norm) // [B, N, H·d] → [B, H, N, d], normalised per head when qk_norm is set
    {
        long b = t.shape[0], n = t.shape[1];
        var heads = t.view(b, n, _heads, -1).transpose(1, 2);
        return norm is null ? heads : norm.call(heads);
    }
}
