using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpDiffusion.Models.Transformers;

/// <summary>
/// diffusers' RMSNorm (elementwise affine): x · rsqrt(mean(x²) + eps) · weight over the last dimension, the mean of
/// squares in float32. A bf16/fp16 input is normalised in float32 and cast back before the scale, as diffusers does.
/// </summary>
public sealed class RmsNorm : Module<Tensor, Tensor>, IParameterOwner
{
    [ComponentName(Name = "weight")] Parameter _weight; // [dim]
    readonly double _eps;

    public RmsNorm(long dim, double eps) : base("RMSNorm")
    {
        _eps = eps;
        _weight = Layers.Parameter([dim], 1.0);
        register_parameter("weight", _weight);
    }

    public override Tensor forward(Tensor x) // [..., dim]
    {
        using var scope = NewDisposeScope();
        var variance = x.to(ScalarType.Float32).pow(2).mean([-1], keepdim: true);
        var normed = (x * (variance + _eps).rsqrt()).to(_weight.dtype); // float32 × input promotes to float32
        return (normed * _weight).MoveToOuterDisposeScope();
    }

    public void SetParameter(string name, Parameter value)
    {
        if (name != "weight") throw new ArgumentException($"RMSNorm has no parameter '{name}' (only 'weight')");
        _weight.Dispose();
        _weight = (Parameter)value.DetachFromDisposeScope();
        ConditionallyRegisterParameter("weight", _weight);
    }
}
