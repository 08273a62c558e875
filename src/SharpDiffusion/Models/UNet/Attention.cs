using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace SharpDiffusion.Models.UNet;

/// <summary>
/// diffusers' Attention as used by SD: softmax(q·kᵀ/√d)·v over <c>heads</c> heads, with q from the query tokens and
/// k, v from the context (self-attention when there is none), then to_out.0. Tokens are [B, N, C].
/// </summary>
public sealed class Attention : Module<Tensor, Tensor?, Tensor>, IAttentionModule
{
    readonly Linear _toQ, _toK, _toV, _toOut;
    readonly AttentionHooks _attentionHooks = new();
    readonly int _heads;
    readonly bool _upcast;

    public Attention(int queryDim, int? crossAttentionDim, int heads, int headDim, bool bias = false, bool upcastAttention = false)
        : base(nameof(Attention))
    {
        _heads = heads;
        _upcast = upcastAttention;
        int inner = heads * headDim;
        int contextDim = crossAttentionDim ?? queryDim;
        _toQ = Layers.Linear(queryDim, inner, hasBias: bias);
        _toK = Layers.Linear(contextDim, inner, hasBias: bias);
        _toV = Layers.Linear(contextDim, inner, hasBias: bias);
        _toOut = Layers.Linear(inner, queryDim, hasBias: true);
        register_module("to_q", _toQ);
        register_module("to_k", _toK);
        register_module("to_v", _toV);
        // to_out is [Linear, Dropout] in diffusers: the Linear is "to_out.0".
        register_module("to_out", new ModuleList<Module>(_toOut, Dropout(0.0)));
    }

    public override Tensor forward(Tensor x, Tensor? context) // x [B, N, C], context [B, M, Cc]
    {
        using var scope = NewDisposeScope();
        context ??= x;
        var q = SplitHeads(_toQ.call(x));
        var k = SplitHeads(_toK.call(context));
        var v = SplitHeads(_toV.call(context));
        var dtype = q.dtype;
        if (_upcast && dtype != ScalarType.Float32)
        {
            // upcast_attention: scores in float32 (a no-op for float32 models).
            (q, k, v) = (q.to(ScalarType.Float32), k.to(ScalarType.Float32), v.to(ScalarType.Float32));
        }
        _attentionHooks.Call(q, k);
        var attended = AttentionKernels.Attend(KernelChoice?.Invoke(q, k) ?? AttentionKernel.Sdpa, q, k, v).to(dtype); // [B, H, N, d]
        long b = attended.shape[0], n = attended.shape[2];
        var merged = attended.transpose(1, 2).reshape(b, n, -1);
        return _toOut.call(merged).MoveToOuterDisposeScope();
    }

    /// <summary>Which kernel computes the attention products (set when the model is loaded); null: SDPA.</summary>
    public AttentionKernelChoice? KernelChoice { get; set; }

    public IDisposable RegisterAttentionHook(Action<Tensor, Tensor> hook) => _attentionHooks.Add(hook);

    Tensor SplitHeads(Tensor t) // [B, N, H·d] → [B, H, N, d]
    {
        long b = t.shape[0], n = t.shape[1];
        return t.view(b, n, _heads, -1).transpose(1, 2);
    }
}
