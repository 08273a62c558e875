using SharpDiffusion.Models.Transformers;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpDiffusion.Models.Upscalers;

/// <summary>torch's PReLU(num_parameters=C): y = x where x ≥ 0, else weight[c]·x, one learned slope per channel.
/// Our own module so the weight loader can replace its parameter (<see cref="IParameterOwner"/>).</summary>
public sealed class PReLU : Module<Tensor, Tensor>, IParameterOwner
{
    Parameter _weight; // [C]

    public PReLU(long channels) : base(nameof(PReLU))
    {
        _weight = Layers.Parameter([channels], 0.25);   // torch's initial slope; loading overwrites it
        register_parameter("weight", _weight);
    }

    /// <param name="x">[B, C, H, W]</param>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var slope = _weight.reshape(1, -1, 1, 1);                                    // [1, C, 1, 1]
        return where(x >= 0, x, x * slope).MoveToOuterDisposeScope();
    }

    public void SetParameter(string name, Parameter value)
    {
        if (name != "weight") throw new ArgumentException($"PReLU has no parameter '{name}' (only 'weight')");
        _weight.Dispose();
        _weight = (Parameter)value.DetachFromDisposeScope();
        ConditionallyRegisterParameter("weight", _weight);
    }
}
