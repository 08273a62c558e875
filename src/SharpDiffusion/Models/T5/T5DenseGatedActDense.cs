using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpDiffusion.Models.T5;

/// <summary>T5 v1.1's gated feed-forward: wo(gelu_new(wi_0(x)) · wi_1(x)), no biases; [.., D] → [.., d_ff] → [.., D].</summary>
public sealed class T5DenseGatedActDense : Module<Tensor, Tensor>
{
    readonly Linear _wi0, _wi1, _wo;
    readonly Func<Tensor, Tensor> _act;

    public T5DenseGatedActDense(T5Config config) : base(nameof(T5DenseGatedActDense))
    {
        _act = Activations.ByName(config.DenseActFn);
        _wi0 = Layers.CompactLinear(config.DModel, config.DFf, hasBias: false);
        _wi1 = Layers.CompactLinear(config.DModel, config.DFf, hasBias: false);
        _wo = Layers.CompactLinear(config.DFf, config.DModel, hasBias: false);
        register_module("wi_0", _wi0);
        register_module("wi_1", _wi1);
        register_module("wo", _wo);
    }

    /// <summary>transformers' <c>_keep_in_fp32_modules = ["wo"]</c> for float16 models: wo's product overflows float16,
    /// so wo stays float32 and its output (float32) lifts the residual stream to float32 from there on.</summary>
    public void KeepOutputProjectionInFloat32() => _wo.to(ScalarType.Float32);

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var gated = Reuse.Mul(_act(_wi0.call(x)), _wi1.call(x)); // [.., d_ff]
        return _wo.call(gated.to(_wo.weight!.dtype)).MoveToOuterDisposeScope();
    }
}
