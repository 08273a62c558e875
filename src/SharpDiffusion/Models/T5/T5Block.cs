using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpDiffusion.Models.T5;

/// <summary>
/// T5Block of the encoder, two pre-norm residual layers named as transformers' state dict:
/// <c>layer.0</c> h += SelfAttention(layer_norm(h)); <c>layer.1</c> h += DenseReluDense(layer_norm(h)).
/// In float16, values are clamped below the dtype's maximum after each layer as transformers does (T5's
/// activations outgrow float16: bfloat16 or float32 are the better compute dtypes; see also
/// <see cref="T5DenseGatedActDense.KeepOutputProjectionInFloat32"/>).
/// </summary>
public sealed class T5Block : Module<Tensor, Tensor, Tensor>
{
    readonly T5LayerSelfAttention _attention;
    readonly T5LayerFF _feedForward;

    public T5Block(T5Config config, bool hasRelativeAttentionBias) : base(nameof(T5Block))
    {
        _attention = new T5LayerSelfAttention(config, hasRelativeAttentionBias);
        _feedForward = new T5LayerFF(config);
        register_module("layer", new ModuleList<Module>(_attention, _feedForward));
    }

    public T5Attention SelfAttention => _attention.SelfAttention;

    public override Tensor forward(Tensor h, Tensor positionBias) // [B, T, D], [1, H, T, T]
    {
        using var scope = NewDisposeScope();
        h = ClampFloat16(_attention.call(h, positionBias));
        h = ClampFloat16(_feedForward.call(h));
        return h.MoveToOuterDisposeScope();
    }

    /// <summary>h + update, promoted as torch promotes (a float32 update lifts a float16 stream: see
    /// <see cref="T5DenseGatedActDense.KeepOutputProjectionInFloat32"/>); in place into the update when dtypes agree.</summary>
    internal static Tensor Residual(Tensor h, Tensor update) => update.dtype == h.dtype ? Reuse.Add(update, h) : h + update;

    // transformers: clamp to ±(max − 1000) when any value overflowed to inf, else to ±max.
    static Tensor ClampFloat16(Tensor h)
    {
        if (h.dtype != ScalarType.Float16) return h;
        double limit = h.isinf().any().item<bool>() ? 65504.0 - 1000 : 65504.0;
        return h.clamp(-limit, limit);
    }
}

/// <summary>T5LayerSelfAttention: h + SelfAttention(layer_norm(h)).</summary>
public sealed class T5LayerSelfAttention : Module<Tensor, Tensor, Tensor>
{
    readonly T5Attention _selfAttention;
    readonly T5LayerNorm _norm;

    public T5LayerSelfAttention(T5Config config, bool hasRelativeAttentionBias) : base(nameof(T5LayerSelfAttention))
    {
        _selfAttention = new T5Attention(config, hasRelativeAttentionBias);
        _norm = new T5LayerNorm(config.DModel, config.LayerNormEpsilon);
        register_module("SelfAttention", _selfAttention);
        register_module("layer_norm", _norm.Weights);
    }

    public T5Attention SelfAttention => _selfAttention;

    public override Tensor forward(Tensor h, Tensor positionBias)
    {
        using var scope = NewDisposeScope();
        return T5Block.Residual(h, _selfAttention.call(_norm.Forward(h), positionBias)).MoveToOuterDisposeScope();
    }
}

/// <summary>T5LayerFF: h + DenseReluDense(layer_norm(h)) (the name is transformers', the activation gated gelu_new).</summary>
public sealed class T5LayerFF : Module<Tensor, Tensor>
{
    readonly T5DenseGatedActDense _dense;
    readonly T5LayerNorm _norm;

    public T5LayerFF(T5Config config) : base(nameof(T5LayerFF))
    {
        _dense = new T5DenseGatedActDense(config);
        _norm = new T5LayerNorm(config.DModel, config.LayerNormEpsilon);
        register_module("DenseReluDense", _dense);
        register_module("layer_norm", _norm.Weights);
    }

    public override Tensor forward(Tensor h)
    {
        using var scope = NewDisposeScope();
        return T5Block.Residual(h, _dense.call(_norm.Forward(h))).MoveToOuterDisposeScope();
    }
}
