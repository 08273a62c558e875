using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace SharpDiffusion.Models.Clip;

/// <summary>CLIPAttention: multi-head self-attention with biased q/k/v/out projections and a causal mask.</summary>
public sealed class ClipAttention : Module<Tensor, Tensor>, IAttentionModule
{
    readonly Linear _q, _k, _v, _out;
    readonly AttentionHooks _attentionHooks = new();
    readonly int _heads;

    public ClipAttention(int hidden, int heads) : base(nameof(ClipAttention))
    {
        if (hidden % heads != 0)
            throw new ArgumentException($"hidden_size {hidden} is not divisible by num_attention_heads {heads}");
        _heads = heads;
        _q = Layers.Linear(hidden, hidden);
        _k = Layers.Linear(hidden, hidden);
        _v = Layers.Linear(hidden, hidden);
        _out = Layers.Linear(hidden, hidden);
        register_module("q_proj", _q);
        register_module("k_proj", _k);
        register_module("v_proj", _v);
        register_module("out_proj", _out);
    }

    public override Tensor forward(Tensor x) // [B, T, D]
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], t = x.shape[1], d = x.shape[2];
        Tensor Heads(Tensor y) => y.view(b, t, _heads, d / _heads).transpose(1, 2); // [B, H, T, d]
        var (q, k, v) = (Heads(_q.call(x)), Heads(_k.call(x)), Heads(_v.call(x)));
        _attentionHooks.Call(q, k);
        var attended = F.scaled_dot_product_attention(q, k, v, is_casual: true);
        var merged = attended.transpose(1, 2).reshape(b, t, d);
        return _out.call(merged).MoveToOuterDisposeScope();
    }

    public IDisposable RegisterAttentionHook(Action<Tensor, Tensor> hook) => _attentionHooks.Add(hook);
}
