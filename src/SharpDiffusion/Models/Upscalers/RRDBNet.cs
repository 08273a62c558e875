using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SharpDiffusion.Models.Upscalers;

/// <summary>The shape of an RRDBNet, as read from its weights (<see cref="UpscalerWeights"/>).</summary>
/// <param name="InChannels">conv_first's input: 3, or 3·4 / 3·16 when the input is pixel-unshuffled first.</param>
/// <param name="Features">nf, the trunk width (64 in the published models).</param>
/// <param name="Blocks">nb, the number of RRDBs (23 in RealESRGAN_x4plus).</param>
/// <param name="GrowthChannels">gc, what each dense conv adds (32).</param>
/// <param name="Upsamplings">conv_up1..n, each after a 2× nearest upsampling.</param>
public sealed record RRDBNetConfig(int InChannels, int OutChannels, int Features, int Blocks, int GrowthChannels, int Upsamplings)
{
    /// <summary>Real-ESRGAN's ×2 (×1) models pixel-unshuffle by 2 (4) first: conv_first then sees 4 (16) times the channels.</summary>
    public int ShuffleFactor => InChannels == OutChannels * 4 ? 2 : InChannels == OutChannels * 16 ? 4 : 1;

    /// <summary>Output size / input size: 2^upsamplings / shuffle factor.</summary>
    public int Scale => (1 << Upsamplings) / ShuffleFactor;

    public void Validate(string path)
    {
        if (InChannels != OutChannels && ShuffleFactor == 1)
            throw new InvalidDataException($"{path}: conv_first takes {InChannels} channels and conv_last gives {OutChannels}; an RRDBNet upscaler takes RGB (3, or 12/48 pixel-unshuffled) and gives RGB.");
        if (OutChannels != 3)
            throw new InvalidDataException($"{path}: conv_last gives {OutChannels} channels; only RGB (3) upscalers are supported.");
        if (Upsamplings < 1 || Upsamplings > 3 || (1 << Upsamplings) < ShuffleFactor)
            throw new InvalidDataException($"{path}: {Upsamplings} upsampling convs (conv_upN) with a pixel-unshuffle of {ShuffleFactor}; supported are 1-3 (×2, ×4, ×8).");
    }
}

/// <summary>
/// ESRGAN's generator (Wang et al. 2018) in Real-ESRGAN's (BasicSR's) key layout:
/// feat = conv_first(x); feat = feat + conv_body(body(feat)); n × [2× nearest, conv_upK, LeakyReLU(0.2)];
/// out = conv_last(LeakyReLU(conv_hr(feat))). Inputs and outputs are RGB in [0, 1], not clamped.
/// </summary>
public sealed class RRDBNet : nn.Module<Tensor, Tensor>
{
    const double Slope = 0.2;   // every LeakyReLU of ESRGAN

    readonly Conv2d conv_first, conv_body, conv_hr, conv_last;
    readonly ModuleList<RRDB> body = new();
    readonly List<Conv2d> ups = [];
    readonly int _shuffle;

    public RRDBNetConfig Config { get; }

    public RRDBNet(RRDBNetConfig config) : base(nameof(RRDBNet))
    {
        Config = config;
        _shuffle = config.ShuffleFactor;
        conv_first = Layers.Conv2d(config.InChannels, config.Features, 3, padding: 1);
        for (int i = 0; i < config.Blocks; i++)
            body.Add(new RRDB(config.Features, config.GrowthChannels));
        conv_body = Layers.Conv2d(config.Features, config.Features, 3, padding: 1);
        for (int i = 0; i < config.Upsamplings; i++)
            ups.Add(Layers.Conv2d(config.Features, config.Features, 3, padding: 1));
        conv_hr = Layers.Conv2d(config.Features, config.Features, 3, padding: 1);
        conv_last = Layers.Conv2d(config.Features, config.OutChannels, 3, padding: 1);
        // Registered by hand: BasicSR names the upsampling convs conv_up1, conv_up2 ... at the top level, not as a list.
        register_module("conv_first", conv_first);
        register_module("body", body);
        register_module("conv_body", conv_body);
        for (int i = 0; i < ups.Count; i++)
            register_module($"conv_up{i + 1}", ups[i]);
        register_module("conv_hr", conv_hr);
        register_module("conv_last", conv_last);
    }

    /// <param name="x">[B, 3, H, W] RGB in [0, 1]</param>
    /// <returns>[B, 3, H·scale, W·scale]</returns>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long h = x.shape[2], w = x.shape[3];
        if (_shuffle > 1)
        {
            // Real-ESRGAN ×2: reflect-pad to a multiple of the factor, fold each 2×2 into channels, crop at the end.
            long padH = (_shuffle - h % _shuffle) % _shuffle, padW = (_shuffle - w % _shuffle) % _shuffle;
            if (padH > 0 || padW > 0)
                x = nn.functional.pad(x, [0, padW, 0, padH], PaddingModes.Reflect);
            x = nn.functional.pixel_unshuffle(x, _shuffle);                         // [B, 3·f², H/f, W/f]
        }
        var feat = conv_first.forward(x);                                           // [B, nf, h, w]
        var trunk = feat;
        foreach (var block in body)
            trunk = block.forward(trunk);
        feat = feat + conv_body.forward(trunk);
        foreach (var up in ups)
        {
            using var doubled = nn.functional.interpolate(feat, scale_factor: [2.0, 2.0], mode: InterpolationMode.Nearest);
            feat = nn.functional.leaky_relu(up.forward(doubled), Slope);            // [B, nf, 2h, 2w]
        }
        var result = conv_last.forward(nn.functional.leaky_relu(conv_hr.forward(feat), Slope));   // [B, 3, h·2ⁿ, w·2ⁿ]
        if (_shuffle > 1)
            result = result[.., .., ..(int)(h * Config.Scale), ..(int)(w * Config.Scale)];
        return result.MoveToOuterDisposeScope();
    }
}

/// <summary>Residual-in-residual dense block: three <see cref="ResidualDenseBlock"/>s, out = rdb3(rdb2(rdb1(x)))·0.2 + x.</summary>
public sealed class RRDB : nn.Module<Tensor, Tensor>
{
    readonly ResidualDenseBlock rdb1, rdb2, rdb3;

    public RRDB(int features, int growth) : base(nameof(RRDB))
    {
        rdb1 = new ResidualDenseBlock(features, growth);
        rdb2 = new ResidualDenseBlock(features, growth);
        rdb3 = new ResidualDenseBlock(features, growth);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var y = rdb3.forward(rdb2.forward(rdb1.forward(x)));
        return y.mul_(0.2).add_(x).MoveToOuterDisposeScope();
    }
}

/// <summary>Five 3×3 convs, each seeing the input and every earlier output (dense connections):
/// xₖ = LeakyReLU(convₖ([x, x₁ … xₖ₋₁])) for k &lt; 5, out = conv5([x, x₁ … x₄])·0.2 + x.</summary>
public sealed class ResidualDenseBlock : nn.Module<Tensor, Tensor>
{
    readonly Conv2d conv1, conv2, conv3, conv4, conv5;

    public ResidualDenseBlock(int features, int growth) : base(nameof(ResidualDenseBlock))
    {
        conv1 = Layers.Conv2d(features, growth, 3, padding: 1);
        conv2 = Layers.Conv2d(features + growth, growth, 3, padding: 1);
        conv3 = Layers.Conv2d(features + 2 * growth, growth, 3, padding: 1);
        conv4 = Layers.Conv2d(features + 3 * growth, growth, 3, padding: 1);
        conv5 = Layers.Conv2d(features + 4 * growth, features, 3, padding: 1);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var x1 = nn.functional.leaky_relu(conv1.forward(x), 0.2);
        var x2 = nn.functional.leaky_relu(conv2.forward(cat([x, x1], 1)), 0.2);
        var x3 = nn.functional.leaky_relu(conv3.forward(cat([x, x1, x2], 1)), 0.2);
        var x4 = nn.functional.leaky_relu(conv4.forward(cat([x, x1, x2, x3], 1)), 0.2);
        var x5 = conv5.forward(cat([x, x1, x2, x3, x4], 1));                        // [B, nf, H, W]
        return x5.mul_(0.2).add_(x).MoveToOuterDisposeScope();
    }
}
