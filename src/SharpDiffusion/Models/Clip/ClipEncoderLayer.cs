using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpDiffusion.Models.Clip;

/// <summary>CLIPEncoderLayer (pre-norm): h += attn(ln1(h)); h += fc2(act(fc1(ln2(h)))).</summary>
public sealed class ClipEncoderLayer : Module<Tensor, Tensor>
{
    readonly LayerNorm _norm1, _norm2;
    readonly ClipAttention _attention;
    readonly ClipMlp _mlp;

    public ClipEncoderLayer(ClipTextConfig config) : base(nameof(ClipEncoderLayer))
    {
        _attention = new ClipAttention(config.HiddenSize, config.NumAttentionHeads);
        _norm1 = Layers.LayerNorm(config.HiddenSize, config.LayerNormEps);
        _mlp = new ClipMlp(config);
        _norm2 = Layers.LayerNorm(config.HiddenSize, config.LayerNormEps);
        register_module("self_attn", _attention);
        register_module("layer_norm1", _norm1);
        register_module("mlp", _mlp);
        register_module("layer_norm2", _norm2);
    }

    public override Tensor forward(Tensor h) // [B, T, D]
    {
        using var scope = NewDisposeScope();
        h = Reuse.Add(_attention.call(_norm1.call(h)), h);
        h = Reuse.Add(_mlp.call(_norm2.call(h)), h);
        return h.MoveToOuterDisposeScope();
    }
}

/// <summary>CLIPMLP: fc2(act(fc1(x))).</summary>
public sealed class ClipMlp : Module<Tensor, Tensor>
{
    readonly Linear _fc1, _fc2;
    readonly Func<Tensor, Tensor> _act;

    public ClipMlp(ClipTextConfig config) : base(nameof(ClipMlp))
    {
        _act = Activations.ByName(config.HiddenAct);
        _fc1 = Layers.Linear(config.HiddenSize, config.IntermediateSize);
        _fc2 = Layers.Linear(config.IntermediateSize, config.HiddenSize);
        register_module("fc1", _fc1);
        register_module("fc2", _fc2);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return _fc2.call(_act(_fc1.call(x))).MoveToOuterDisposeScope();
    }
}
