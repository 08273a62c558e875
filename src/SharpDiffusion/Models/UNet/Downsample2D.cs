using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace SharpDiffusion.Models.UNet;

/// <summary>diffusers' Downsample2D with a conv: 3×3, stride 2. With padding 0 (the VAE encoder) the input is
/// first padded by one on the right and bottom, as diffusers does.</summary>
public sealed class Downsample2D : Module<Tensor, Tensor>
{
    readonly Conv2d _conv;
    readonly int _padding;

    public Downsample2D(int channels, int outChannels, int padding) : base(nameof(Downsample2D))
    {
        _padding = padding;
        _conv = Layers.Conv2d(channels, outChannels, 3, stride: 2, padding: padding);
        register_module("conv", _conv);
    }

    public override Tensor forward(Tensor x)
    {
        if (_padding != 0)
            return _conv.call(x);
        using var padded = F.pad(x, [0, 1, 0, 1]);
        return _conv.call(padded);
    }
}
