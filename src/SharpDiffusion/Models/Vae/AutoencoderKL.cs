using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace SharpDiffusion.Models.Vae;

/// <summary>The encoder's posterior N(mean, std²) per latent element (logvar clamped to [-30, 20]).</summary>
public sealed class DiagonalGaussian : IDisposable
{
    public Tensor Mean { get; }
    public Tensor LogVar { get; }
    public Tensor Std { get; }
    public Tensor Var { get; }

    public DiagonalGaussian(Tensor moments) // [B, 2·latent, h, w]
    {
        var halves = moments.chunk(2, 1);
        Mean = halves[0];
        LogVar = halves[1].clamp(-30.0, 20.0);
        halves[1].Dispose();
        Std = (LogVar * 0.5).exp_();
        Var = LogVar.exp();
    }

    /// <summary>mean + std·ε with ε drawn on the CPU generator (as diffusers' randn_tensor does), then moved.</summary>
    public Tensor Sample(Generator? generator)
    {
        using var noise = randn(Mean.shape, dtype: ScalarType.Float32, generator: generator);
        using var moved = noise.to(Mean.dtype).to(Mean.device);
        return Mean + Std * moved;
    }

    public void Dispose()
    {
        Mean.Dispose();
        LogVar.Dispose();
        Std.Dispose();
        Var.Dispose();
    }
}

/// <summary>diffusers' AutoencoderKL: image [B,3,H,W] in [-1,1] ⇄ latents [B,latent_channels,H/f,W/f] (4 for SD, 16 for SD3/Flux,
/// which have no quant convs).</summary>
public sealed class AutoencoderKL : Module, IAutoencoder
{
    readonly VaeEncoder _encoder;
    readonly VaeDecoder _decoder;
    readonly Conv2d? _quantConv, _postQuantConv;

    public AutoencoderKLConfig Config { get; }

    public AutoencoderKL(AutoencoderKLConfig config) : base(nameof(AutoencoderKL))
    {
        Config = config;
        int latent = config.LatentChannels;
        _encoder = new VaeEncoder(config);
        _decoder = new VaeDecoder(config);
        register_module("encoder", _encoder);
        register_module("decoder", _decoder);
        if (config.UseQuantConv)
        {
            _quantConv = Layers.Conv2d(2 * latent, 2 * latent, 1);
            register_module("quant_conv", _quantConv);
        }
        if (config.UsePostQuantConv)
        {
            _postQuantConv = Layers.Conv2d(latent, latent, 1);
            register_module("post_quant_conv", _postQuantConv);
        }
    }

    /// <summary>z [B, latent, h, w] (already divided by the scaling factor) → image [B, out, h·f, w·f].</summary>
    public Tensor Decode(Tensor z)
    {
        using var scope = NewDisposeScope();
        var h = _postQuantConv is null ? _decoder.call(z) : _postQuantConv.call(z).Then(_decoder.call);
        return h.MoveToOuterDisposeScope();
    }

    public int LatentChannels => Config.LatentChannels;
    public int SpatialFactor => Config.ScaleFactor;

    /// <summary>One draw from the posterior <see cref="Encode"/> gives (diffusers' retrieve_latents, sample mode).</summary>
    public Tensor EncodeSample(Tensor image, Generator? generator)
    {
        using var posterior = Encode(image);
        return posterior.Sample(generator);
    }

    /// <summary>image [B, in, H, W] → the posterior over latents (before the scaling factor).</summary>
    public DiagonalGaussian Encode(Tensor image)
    {
        if (image.shape[2] % Config.ScaleFactor != 0 || image.shape[3] % Config.ScaleFactor != 0)
            throw new ArgumentException($"Image size {image.shape[3]}x{image.shape[2]} is not a multiple of the VAE factor {Config.ScaleFactor}");
        using var scope = NewDisposeScope();
        var moments = _encoder.call(image); // [B, 2·latent, h, w]: mean and logvar
        if (_quantConv is not null) moments = moments.Then(_quantConv.call);
        var posterior = new DiagonalGaussian(moments);
        foreach (var t in new[] { posterior.Mean, posterior.LogVar, posterior.Std, posterior.Var }) t.MoveToOuterDisposeScope();
        return posterior;
    }
}

sealed class VaeEncoder : Module<Tensor, Tensor>
{
    readonly Conv2d _convIn, _convOut;
    readonly ModuleList<DownEncoderBlock2D> _downBlocks;
    readonly VaeMidBlock _midBlock;
    readonly GroupNorm _convNormOut;

    public VaeEncoder(AutoencoderKLConfig c) : base("Encoder")
    {
        var ch = c.BlockOutChannels;
        _convIn = Layers.Conv2d(c.InChannels, ch[0], 3, padding: 1);
        _downBlocks = new ModuleList<DownEncoderBlock2D>(Enumerable.Range(0, ch.Length)
            .Select(i => new DownEncoderBlock2D(i == 0 ? ch[0] : ch[i - 1], ch[i], c.LayersPerBlock, c.NormNumGroups, i < ch.Length - 1)).ToArray());
        _midBlock = new VaeMidBlock(ch[^1], c.NormNumGroups, c.MidBlockAddAttention);
        _convNormOut = Layers.GroupNorm(c.NormNumGroups, ch[^1], 1e-6);
        _convOut = Layers.Conv2d(ch[^1], 2 * c.LatentChannels, 3, padding: 1); // double_z: mean and logvar
        register_module("conv_in", _convIn);
        register_module("down_blocks", _downBlocks);
        register_module("mid_block", _midBlock);
        register_module("conv_norm_out", _convNormOut);
        register_module("conv_out", _convOut);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = _convIn.call(x);
        foreach (var block in _downBlocks) h = h.Then(block.call);
        h = h.Then(_midBlock.call).Then(_convNormOut.call).Then(Reuse.Silu).Then(_convOut.call);
        return h.MoveToOuterDisposeScope();
    }
}

sealed class VaeDecoder : Module<Tensor, Tensor>
{
    readonly Conv2d _convIn, _convOut;
    readonly VaeMidBlock _midBlock;
    readonly ModuleList<UpDecoderBlock2D> _upBlocks;
    readonly GroupNorm _convNormOut;

    public VaeDecoder(AutoencoderKLConfig c) : base("Decoder")
    {
        var reversed = c.BlockOutChannels.Reverse().ToArray();
        _convIn = Layers.Conv2d(c.LatentChannels, reversed[0], 3, padding: 1);
        _midBlock = new VaeMidBlock(reversed[0], c.NormNumGroups, c.MidBlockAddAttention);
        _upBlocks = new ModuleList<UpDecoderBlock2D>(Enumerable.Range(0, reversed.Length)
            .Select(i => new UpDecoderBlock2D(i == 0 ? reversed[0] : reversed[i - 1], reversed[i], c.LayersPerBlock + 1, c.NormNumGroups, i < reversed.Length - 1)).ToArray());
        _convNormOut = Layers.GroupNorm(c.NormNumGroups, c.BlockOutChannels[0], 1e-6);
        _convOut = Layers.Conv2d(c.BlockOutChannels[0], c.OutChannels, 3, padding: 1);
        register_module("conv_in", _convIn);
        register_module("mid_block", _midBlock);
        register_module("up_blocks", _upBlocks);
        register_module("conv_norm_out", _convNormOut);
        register_module("conv_out", _convOut);
    }

    public override Tensor forward(Tensor z)
    {
        using var scope = NewDisposeScope();
        var h = _convIn.call(z).Then(_midBlock.call);
        foreach (var block in _upBlocks) h = h.Then(block.call);
        h = h.Then(_convNormOut.call).Then(Reuse.Silu).Then(_convOut.call);
        return h.MoveToOuterDisposeScope();
    }
}
