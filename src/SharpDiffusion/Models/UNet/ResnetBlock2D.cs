using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace SharpDiffusion.Models.UNet;

/// <summary>
/// diffusers' ResnetBlock2D (time_embedding_norm "default"):
/// h = conv1(silu(norm1(x))) + time_emb_proj(silu(temb)); h = conv2(silu(norm2(h))); out = (shortcut(x) + h) / output_scale_factor.
/// Without temb_channels (the VAE) there is no time projection.
/// </summary>
public sealed class ResnetBlock2D : Module<Tensor, Tensor?, Tensor>
{
    readonly GroupNorm _norm1, _norm2;
    readonly Conv2d _conv1, _conv2;
    readonly Linear? _timeEmbProj;
    readonly Conv2d? _convShortcut;
    readonly double _outputScaleFactor;

    public ResnetBlock2D(int inChannels, int outChannels, int? tembChannels, int groups, double eps, double outputScaleFactor = 1.0)
        : base(nameof(ResnetBlock2D))
    {
        _outputScaleFactor = outputScaleFactor;
        _norm1 = Layers.GroupNorm(groups, inChannels, eps);
        _conv1 = Layers.Conv2d(inChannels, outChannels, 3, padding: 1);
        _norm2 = Layers.GroupNorm(groups, outChannels, eps);
        _conv2 = Layers.Conv2d(outChannels, outChannels, 3, padding: 1);
        register_module("norm1", _norm1);
        register_module("conv1", _conv1);
        if (tembChannels is int t)
        {
            _timeEmbProj = Layers.Linear(t, outChannels);
            register_module("time_emb_proj", _timeEmbProj);
        }
        register_module("norm2", _norm2);
        register_module("conv2", _conv2);
        if (inChannels != outChannels)
        {
            _convShortcut = Layers.Conv2d(inChannels, outChannels, 1);
            register_module("conv_shortcut", _convShortcut);
        }
    }

    public override Tensor forward(Tensor x, Tensor? temb) // x [B, Cin, H, W], temb [B, T]
    {
        using var scope = NewDisposeScope();
        var h = Reuse.Silu(_norm1.call(x)).Then(_conv1.call);
        if (_timeEmbProj is not null && temb is not null)
            h = Reuse.Add(h, _timeEmbProj.call(F.silu(temb)).unsqueeze(-1).unsqueeze(-1)); // + [B, Cout, 1, 1]
        h = h.Then(_norm2.call).Then(Reuse.Silu).Then(_conv2.call);
        var output = _convShortcut is null ? Reuse.Add(h, x) : Reuse.Add(h, _convShortcut.call(x));
        if (_outputScaleFactor != 1.0)
            output = output.Then(o => o / _outputScaleFactor);
        return output.MoveToOuterDisposeScope();
    }
}
