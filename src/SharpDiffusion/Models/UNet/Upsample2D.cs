using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace SharpDiffusion.Models.UNet;

/// <summary>diffusers' Upsample2D with a conv: nearest-neighbour ×2 (or to an explicit size, when the
/// latent size is not a multiple of the UNet's total down factor), then a 3×3 conv.</summary>
public sealed class Upsample2D : Module<Tensor, long[]?, Tensor>
{
    readonly Conv2d _conv;

    public Upsample2D(int channels, int outChannels) : base(nameof(Upsample2D))
    {
        _conv = Layers.Conv2d(channels, outChannels, 3, padding: 1);
        register_module("conv", _conv);
    }

    public override Tensor forward(Tensor x, long[]? outputSize)
    {
        using var upsampled = outputSize is null
            ? F.interpolate(x, scale_factor: [2.0, 2.0], mode: InterpolationMode.Nearest)
            : F.interpolate(x, size: outputSize, mode: InterpolationMode.Nearest);
        return _conv.call(upsampled);
    }
}
