using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SharpDiffusion.Models.Upscalers;

/// <summary>The shape of an SRVGGNetCompact (realesr-general-x4v3, realesr-animevideov3), read from its weights.</summary>
/// <param name="Features">num_feat, body.0's output channels (64 in the published models).</param>
/// <param name="Convs">num_conv, the 3×3 convs between the first and the last (32 in realesr-general-x4v3).</param>
/// <param name="Scale">√(last conv's outputs / 3): the pixel shuffle's factor.</param>
public sealed record SRVGGNetCompactConfig(int InChannels, int Features, int Convs, int Scale);

/// <summary>
/// Real-ESRGAN's compact network: body = conv(3→nf), PReLU, num_conv × [conv(nf→nf), PReLU], conv(nf→3·s²);
/// out = pixel_shuffle(body(x), s) + nearest_upsample(x, s). All the work happens at the input's size.
/// </summary>
public sealed class SRVGGNetCompact : nn.Module<Tensor, Tensor>
{
    readonly ModuleList<nn.Module<Tensor, Tensor>> body = new();

    public SRVGGNetCompactConfig Config { get; }

    public SRVGGNetCompact(SRVGGNetCompactConfig config) : base(nameof(SRVGGNetCompact))
    {
        Config = config;
        body.Add(Layers.Conv2d(config.InChannels, config.Features, 3, padding: 1));
        body.Add(new PReLU(config.Features));
        for (int i = 0; i < config.Convs; i++)
        {
            body.Add(Layers.Conv2d(config.Features, config.Features, 3, padding: 1));
            body.Add(new PReLU(config.Features));
        }
        body.Add(Layers.Conv2d(config.Features, config.InChannels * config.Scale * config.Scale, 3, padding: 1));
        RegisterComponents();
    }

    /// <param name="x">[B, 3, H, W] RGB in [0, 1]</param>
    /// <returns>[B, 3, H·s, W·s]</returns>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = x;
        foreach (var layer in body)
            y = layer.forward(y);                                                   // [B, 3·s², H, W] at the end
        var shuffled = nn.functional.pixel_shuffle(y, Config.Scale);               // [B, 3, H·s, W·s]
        using var baseImage = nn.functional.interpolate(x, scale_factor: [Config.Scale, Config.Scale], mode: InterpolationMode.Nearest);
        return shuffled.add_(baseImage).MoveToOuterDisposeScope();
    }
}
