using SharpDiffusion.Conditioning;
using SharpDiffusion.Models.UNet;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpDiffusion.Models.ControlNet;

/// <summary>
/// diffusers' ControlNetModel: a copy of a UNet's down path (the same <see cref="UNetDownBlock"/>s and
/// <see cref="UNetMidBlock2DCrossAttn"/>) that also sees a control image through <see cref="ControlNetConditioningEmbedding"/>,
/// and hands each skip tensor and the mid output through its own 1×1 "zero conv" to the UNet as residuals.
/// Module names are diffusers' state-dict keys.
/// </summary>
public sealed class ControlNetModel : Module
{
    readonly Conv2d _convIn;
    readonly TimestepEmbedding _timeEmbedding;
    readonly TimestepEmbedding? _addEmbedding; // SDXL text_time
    readonly ControlNetConditioningEmbedding _condEmbedding;
    readonly ModuleList<UNetDownBlock> _downBlocks;
    readonly ModuleList<Conv2d> _controlnetDownBlocks;
    readonly UNetMidBlock2DCrossAttn _midBlock;
    readonly Conv2d _controlnetMidBlock;

    public ControlNetModelConfig Config { get; }

    public ControlNetModel(ControlNetModelConfig config) : base(nameof(ControlNetModel))
    {
        Config = config;
        var c = config.Unet;
        int levels = c.BlockOutChannels.Length;
        var s = new UNetBlockSettings(c.TimeEmbedDim, c.NormNumGroups, c.NormEps, c.UseLinearProjection, c.UpcastAttention);

        _convIn = Layers.Conv2d(c.InChannels, c.BlockOutChannels[0], 3, padding: 1);
        _timeEmbedding = new TimestepEmbedding(c.BlockOutChannels[0], c.TimeEmbedDim);
        if (c.AdditionEmbedType == "text_time")
            _addEmbedding = new TimestepEmbedding(c.ProjectionClassEmbeddingsInputDim, c.TimeEmbedDim);
        _condEmbedding = new ControlNetConditioningEmbedding(config.ConditioningChannels, config.ConditioningEmbeddingOutChannels, c.BlockOutChannels[0]);

        var down = new List<UNetDownBlock>();
        for (int i = 0; i < levels; i++)
        {
            int inCh = i == 0 ? c.BlockOutChannels[0] : c.BlockOutChannels[i - 1];
            var attention = c.DownBlockTypes[i] == "CrossAttnDownBlock2D"
                ? new BlockAttention(c.NumAttentionHeads[i], c.TransformerLayersPerBlock[i], c.CrossAttentionDim[i], c.OnlyCrossAttention[i])
                : null;
            down.Add(new UNetDownBlock(inCh, c.BlockOutChannels[i], c.LayersPerBlock[i], i < levels - 1, c.DownsamplePadding, s, attention));
        }
        _downBlocks = new ModuleList<UNetDownBlock>(down.ToArray());
        // One 1×1 conv per skip tensor, in the order the down path makes them.
        _controlnetDownBlocks = new ModuleList<Conv2d>(config.ResidualChannels.Select(ch => Layers.Conv2d(ch, ch, 1)).ToArray());
        _midBlock = new UNetMidBlock2DCrossAttn(c.BlockOutChannels[^1], c.MidBlockScaleFactor, s,
            new BlockAttention(c.NumAttentionHeads[^1], c.TransformerLayersPerBlock[^1], c.CrossAttentionDim[^1], c.OnlyCrossAttention[^1]));
        _controlnetMidBlock = Layers.Conv2d(c.BlockOutChannels[^1], c.BlockOutChannels[^1], 1);

        register_module("conv_in", _convIn);
        register_module("time_embedding", _timeEmbedding);
        if (_addEmbedding is not null)
            register_module("add_embedding", _addEmbedding);
        register_module("controlnet_cond_embedding", _condEmbedding);
        register_module("down_blocks", _downBlocks);
        register_module("controlnet_down_blocks", _controlnetDownBlocks);
        register_module("mid_block", _midBlock);
        register_module("controlnet_mid_block", _controlnetMidBlock);
    }

    /// <summary>The conditioning embedding alone: control image [B, 3, H, W] in [0, 1] → [B, C₀, H/f, W/f].</summary>
    public Tensor EmbedCondition(Tensor controlImage) => _condEmbedding.call(OrderChannels(controlImage));

    /// <param name="sample">[B, in_channels, h, w] the UNet's latent input (scaled by the scheduler).</param>
    /// <param name="timesteps">a 0-d tensor, or one per row [B].</param>
    /// <param name="conditioning">the same text conditioning as the UNet's rows (SDXL: pooled and time ids too).</param>
    /// <param name="controlImage">[B, 3, h·f, w·f] in [0, 1], RGB.</param>
    /// <param name="scale">diffusers' conditioning_scale: every residual × scale.</param>
    /// <param name="guessMode">residual i × 10^(−1 + i/n) (n = the number of down residuals; the mid one × 1) before the scale.</param>
    public ControlNetResiduals Forward(Tensor sample, Tensor timesteps, TextConditioning conditioning, Tensor controlImage, double scale = 1.0,
        bool guessMode = false)
    {
        var c = Config.Unet;
        long batch = sample.shape[0];
        long f = Config.ConditioningFactor;
        if (sample.dim() != 4 || sample.shape[1] != c.InChannels)
            throw new ArgumentException($"ControlNet sample must be [B, {c.InChannels}, h, w], got [{string.Join(", ", sample.shape)}]");
        if (controlImage.dim() != 4 || controlImage.shape[0] != batch || controlImage.shape[1] != Config.ConditioningChannels
            || controlImage.shape[2] != sample.shape[2] * f || controlImage.shape[3] != sample.shape[3] * f)
            throw new ArgumentException($"ControlNet image must be [{batch}, {Config.ConditioningChannels}, {sample.shape[2] * f}, {sample.shape[3] * f}] " +
                $"(the latents × {f}), got [{string.Join(", ", controlImage.shape)}]");
        using var scope = NewDisposeScope();
        var context = conditioning.EncoderHiddenStates;

        var t = timesteps.dim() == 0 ? timesteps.expand(batch) : timesteps;
        var tEmb = TimestepProjection.Embed(t.to(sample.device), c.BlockOutChannels[0], c.FlipSinToCos, c.FreqShift).to(sample.dtype);
        var emb = _timeEmbedding.call(tEmb); // [B, time_embed_dim]
        if (_addEmbedding is not null)
            emb = emb + _addEmbedding.call(UNet2DConditionModel.TextTimeInputs(conditioning, batch, c, sample.dtype, "This ControlNet"));

        var h = _convIn.call(sample) + EmbedCondition(controlImage.to(sample.dtype)); // [B, C₀, h, w]
        var skips = new List<Tensor> { h };
        foreach (var block in _downBlocks)
        {
            (h, var blockSkips) = block.Forward(h, emb, context);
            skips.AddRange(blockSkips);
        }
        h = _midBlock.call(h, emb, context);

        var down = skips.Select((skip, i) => _controlnetDownBlocks[i].call(skip)).ToList();
        var mid = _controlnetMidBlock.call(h);
        if (guessMode && !Config.GlobalPoolConditions)
        {
            // diffusers: scales = logspace(−1, 0, n + 1) (float32) × scale; the last one (1 × scale) for the mid block.
            var scales = logspace(-1, 0, down.Count + 1, dtype: ScalarType.Float32) * scale;
            var values = scales.data<float>().ToArray();
            down = down.Select((r, i) => r * values[i]).ToList();
            mid = mid * values[^1];
        }
        else
        {
            down = down.Select(r => r * scale).ToList();
            mid = mid * scale;
        }
        if (Config.GlobalPoolConditions)
        {
            // The shuffle ControlNet (after the scale, as diffusers): one value per channel, broadcast over the UNet's h, w.
            down = down.Select(r => r.mean([2, 3], keepdim: true)).ToList();
            mid = mid.mean([2, 3], keepdim: true);
        }
        return new ControlNetResiduals(down, mid).MoveToOuterDisposeScope();
    }

    Tensor OrderChannels(Tensor image) => Config.ChannelOrder == "bgr" ? image.flip(1) : image;
}
