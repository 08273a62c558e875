using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace SharpDiffusion.Models.UNet;

/// <summary>
/// diffusers' BasicTransformerBlock (norm_type "layer_norm"):
/// h += attn1(norm1(h)) (self-attention, or cross-attention with only_cross_attention);
/// h += attn2(norm2(h), text); h += ff(norm3(h)).
/// </summary>
public sealed class BasicTransformerBlock : Module<Tensor, Tensor, Tensor>
{
    readonly LayerNorm _norm1, _norm2, _norm3;
    readonly Attention _attn1, _attn2;
    readonly FeedForward _ff;
    readonly bool _onlyCrossAttention;

    public BasicTransformerBlock(int dim, int heads, int headDim, int crossAttentionDim, bool onlyCrossAttention, bool upcastAttention)
        : base(nameof(BasicTransformerBlock))
    {
        _onlyCrossAttention = onlyCrossAttention;
        _norm1 = Layers.LayerNorm(dim, 1e-5);
        _attn1 = new Attention(dim, onlyCrossAttention ? crossAttentionDim : null, heads, headDim, upcastAttention: upcastAttention);
        _norm2 = Layers.LayerNorm(dim, 1e-5);
        _attn2 = new Attention(dim, crossAttentionDim, heads, headDim, upcastAttention: upcastAttention);
        _norm3 = Layers.LayerNorm(dim, 1e-5);
        _ff = new FeedForward(dim);
        register_module("norm1", _norm1);
        register_module("attn1", _attn1);
        register_module("norm2", _norm2);
        register_module("attn2", _attn2);
        register_module("norm3", _norm3);
        register_module("ff", _ff);
    }

    public override Tensor forward(Tensor h, Tensor context) // h [B, N, C], context [B, 77, Cc]
    {
        using var scope = NewDisposeScope();
        h = Reuse.Add(_attn1.call(_norm1.call(h), _onlyCrossAttention ? context : null), h);
        h = Reuse.Add(_attn2.call(_norm2.call(h), context), h);
        h = Reuse.Add(_ff.call(_norm3.call(h)), h);
        return h.MoveToOuterDisposeScope();
    }
}

/// <summary>diffusers' FeedForward with GEGLU: net.2(value · gelu(gate)), [value | gate] = net.0.proj(x).</summary>
public sealed class FeedForward : Module<Tensor, Tensor>
{
    readonly Linear _proj, _out;

    public FeedForward(int dim, int mult = 4) : base(nameof(FeedForward))
    {
        int inner = dim * mult;
        _proj = Layers.Linear(dim, inner * 2);
        _out = Layers.Linear(inner, dim);
        var geglu = new GegluProjection(_proj);
        register_module("net", new ModuleList<Module>(geglu, Dropout(0.0), _out));
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var both = _proj.call(x).chunk(2, -1);
        var gated = Reuse.Mul(F.gelu(both[1]), both[0]);
        return _out.call(gated).MoveToOuterDisposeScope();
    }

    // Holds "net.0.proj" so the state-dict keys match diffusers' GEGLU module.
    sealed class GegluProjection : Module
    {
        public GegluProjection(Linear proj) : base("GEGLU") => register_module("proj", proj);
    }
}
