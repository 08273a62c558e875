using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace SharpDiffusion.Models.Transformers;

/// <summary>
/// diffusers' FeedForward with activation_fn "gelu-approximate" (SD3, Flux): net.2(gelu_tanh(net.0.proj(x))), inner width
/// 4·dim. (The UNet's FeedForward is the GEGLU variant.)
/// </summary>
public sealed class GeluFeedForward : Module<Tensor, Tensor>
{
    readonly Linear _proj, _out;

    public GeluFeedForward(int dim, int mult = 4) : base("FeedForward")
    {
        _proj = Layers.CompactLinear(dim, dim * mult);
        _out = Layers.CompactLinear(dim * mult, dim);
        register_module("net", new ModuleList<Module>(new GeluProjection(_proj), Dropout(0.0), _out));
    }

    public override Tensor forward(Tensor x) // [B, N, D]
    {
        using var scope = NewDisposeScope();
        var hidden = F.gelu(_proj.call(x), TorchSharp.Modules.GELU.Approximate.tanh); // [B, N, 4D]
        return _out.call(hidden).MoveToOuterDisposeScope();
    }

    // Holds "net.0.proj" so the state-dict keys match diffusers' GELU module.
    sealed class GeluProjection : Module
    {
        public GeluProjection(Linear proj) : base("GELU") => register_module("proj", proj);
    }
}
