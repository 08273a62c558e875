using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpDiffusion.Models.Transformers;

/// <summary>
/// diffusers' Attention with FluxAttnProcessor2_0: q, k, v of the image tokens (to_q/k/v) and, in a double block, of the
/// text tokens (add_q/k/v_proj), each head RMS-normalised (norm_q/k, norm_added_q/k, eps 1e-6); the text goes FIRST in
/// the joint sequence [text | image] (unlike SD3), the rotary tables of that sequence turn q and k
/// (<see cref="FluxPosEmbed.Apply"/>), then SDPA. A double block splits the result back: image through to_out.0, text
/// through to_add_out. A single block's attention (pre_only) has no output projection: its tokens are already
/// [text | image] and its result goes out as it is.
/// </summary>
public sealed class FluxAttention : Module, IAttentionModule
{
    readonly Linear _toQ, _toK, _toV;
    readonly Linear? _toOut, _addQ, _addK, _addV, _toAddOut;
    readonly RmsNorm _normQ, _normK;
    readonly RmsNorm? _normAddedQ, _normAddedK;
    readonly AttentionHooks _attentionHooks = new();
    readonly int _heads;

    /// <param name="hasContext">a double block's attention (text projections and both output projections); false: a
    /// single block's (pre_only: no output projection).</param>
    public FluxAttention(int dim, int heads, int headDim, bool hasContext) : base("Attention")
    {
        _heads = heads;
        int inner = heads * headDim;
        (_toQ, _toK, _toV) = (Layers.CompactLinear(dim, inner), Layers.CompactLinear(dim, inner), Layers.CompactLinear(dim, inner));
        (_normQ, _normK) = (new RmsNorm(headDim, 1e-6), new RmsNorm(headDim, 1e-6));
        register_module("to_q", _toQ);
        register_module("to_k", _toK);
        register_module("to_v", _toV);
        register_module("norm_q", _normQ);
        register_module("norm_k", _normK);
        if (!hasContext) return;
        (_addQ, _addK, _addV) = (Layers.CompactLinear(dim, inner), Layers.CompactLinear(dim, inner), Layers.CompactLinear(dim, inner));
        (_normAddedQ, _normAddedK) = (new RmsNorm(headDim, 1e-6), new RmsNorm(headDim, 1e-6));
        register_module("add_q_proj", _addQ);
        register_module("add_k_proj", _addK);
        register_module("add_v_proj", _addV);
        register_module("norm_added_q", _normAddedQ);
        register_module("norm_added_k", _normAddedK);
        _toOut = Layers.CompactLinear(inner, dim);
        // to_out is [Linear, Dropout] in diffusers: the Linear is "to_out.0".
        register_module("to_out", new ModuleList<Module>(_toOut, Dropout(0.0)));
        _toAddOut = Layers.CompactLinear(inner, dim);
        register_module("to_add_out", _toAddOut);
    }

    /// <summary>Which kernel computes the attention products (set when the model is loaded); null: SDPA.</summary>
    public AttentionKernelChoice? KernelChoice { get; set; }

    public IDisposable RegisterAttentionHook(Action<Tensor, Tensor> hook) => _attentionHooks.Add(hook);

    /// <param name="x">image tokens [B, N, D] (a single block: all tokens [B, M + N, D]).</param>
    /// <param name="context">text tokens [B, M, D] in a double block; null in a single block.</param>
    /// <param name="rotary">cos, sin [M + N, d] of the whole sequence.</param>
    /// <returns>the image tokens' output [B, N, D] and the text tokens' [B, M, D] (double block); a single block: the
    /// attended sequence [B, M + N, H·d] and null.</returns>
    public (Tensor Hidden, Tensor? Context) Forward(Tensor x, Tensor? context, (Tensor Cos, Tensor Sin) rotary)
    {
        using var scope = NewDisposeScope();
        var q = Heads(_toQ.call(x), _normQ);
        var k = Heads(_toK.call(x), _normK);
        var v = Heads(_toV.call(x), null);
        long m = 0;
        if (context is not null)
        {
            if (_addQ is null) throw new InvalidOperationException("A single block's attention has no text projections; call it without context.");
            m = context.shape[1];
            q = cat([Heads(_addQ.call(context), _normAddedQ), q], 2); // [B, H, M + N, d]: text first
            k = cat([Heads(_addK!.call(context), _normAddedK), k], 2);
            v = cat([Heads(_addV!.call(context), null), v], 2);
        }
        q = FluxPosEmbed.Apply(q, rotary.Cos, rotary.Sin);
        k = FluxPosEmbed.Apply(k, rotary.Cos, rotary.Sin);
        _attentionHooks.Call(q, k);
        var attended = AttentionKernels.Attend(KernelChoice?.Invoke(q, k) ?? AttentionKernel.Sdpa, q, k, v); // [B, H, M + N, d]
        long b = attended.shape[0], total = attended.shape[2];
        var merged = attended.transpose(1, 2).reshape(b, total, -1).to(q.dtype);                         // [B, M + N, H·d]
        if (context is null)
            return (merged.MoveToOuterDisposeScope(), null);
        var contextOut = _toAddOut!.call(merged.narrow(1, 0, m)).MoveToOuterDisposeScope();
        var hidden = _toOut!.call(merged.narrow(1, m, total - m)).MoveToOuterDisposeScope();
        return (hidden, contextOut);
    }

    Tensor Heads(Tensor t, RmsNorm? norm) // [B, N, H·d] → [B, H, N, d], normalised per head when given
    {
        long b = t.shape[0], n = t.shape[1];
        var heads = t.view(b, n, _heads, -1).transpose(1, 2);
        return norm is null ? heads : norm.call(heads);
    }
}
