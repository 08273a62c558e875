using SharpDiffusion.Conditioning;
using SharpDiffusion.Models.ControlNet;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace SharpDiffusion.Models.UNet;

/// <summary>
/// diffusers' UNet2DConditionModel for SD 1.x/2.x: predicts the noise (or v) in a latent, given a timestep and
/// text embeddings. Module names are diffusers' state-dict keys.
/// </summary>
public sealed class UNet2DConditionModel : Module
{
    readonly Conv2d _convIn, _convOut;
    readonly TimestepEmbedding _timeEmbedding;
    readonly TimestepEmbedding? _addEmbedding; // SDXL text_time
    readonly ModuleList<UNetDownBlock> _downBlocks;
    readonly UNetMidBlock2DCrossAttn? _midBlock;
    readonly ModuleList<UNetUpBlock> _upBlocks;
    readonly GroupNorm _convNormOut;

    public UNet2DConditionConfig Config { get; }

    public UNet2DConditionModel(UNet2DConditionConfig config) : base(nameof(UNet2DConditionModel))
    {
        Config = config;
        var c = config;
        int levels = c.BlockOutChannels.Length;
        var s = new UNetBlockSettings(c.TimeEmbedDim, c.NormNumGroups, c.NormEps, c.UseLinearProjection, c.UpcastAttention);

        _convIn = Layers.Conv2d(c.InChannels, c.BlockOutChannels[0], c.ConvInKernel, padding: (c.ConvInKernel - 1) / 2);
        _timeEmbedding = new TimestepEmbedding(c.BlockOutChannels[0], c.TimeEmbedDim, c.TimeCondProjDim);
        if (c.AdditionEmbedType == "text_time")
            _addEmbedding = new TimestepEmbedding(c.ProjectionClassEmbeddingsInputDim, c.TimeEmbedDim);

        var down = new List<UNetDownBlock>();
        for (int i = 0; i < levels; i++)
        {
            int inCh = i == 0 ? c.BlockOutChannels[0] : c.BlockOutChannels[i - 1];
            var attention = c.DownBlockTypes[i] switch
            {
                "CrossAttnDownBlock2D" => new BlockAttention(c.NumAttentionHeads[i], c.TransformerLayersPerBlock[i], c.CrossAttentionDim[i], c.OnlyCrossAttention[i]),
                "DownBlock2D" => null,
                var other => throw new NotSupportedException($"down block type '{other}' is not supported (CrossAttnDownBlock2D, DownBlock2D are)"),
            };
            down.Add(new UNetDownBlock(inCh, c.BlockOutChannels[i], c.LayersPerBlock[i], i < levels - 1, c.DownsamplePadding, s, attention));
        }
        _downBlocks = new ModuleList<UNetDownBlock>(down.ToArray());

        _midBlock = c.MidBlockType switch
        {
            "UNetMidBlock2DCrossAttn" => new UNetMidBlock2DCrossAttn(c.BlockOutChannels[^1], c.MidBlockScaleFactor, s,
                new BlockAttention(c.NumAttentionHeads[^1], c.TransformerLayersPerBlock[^1], c.CrossAttentionDim[^1], c.OnlyCrossAttention[^1])),
            var other => throw new NotSupportedException($"mid_block_type '{other}' is not supported (UNetMidBlock2DCrossAttn is)"),
        };

        // The up path mirrors the down path: per-block lists are reversed.
        var reversedChannels = c.BlockOutChannels.Reverse().ToArray();
        var up = new List<UNetUpBlock>();
        int outCh = reversedChannels[0];
        for (int i = 0; i < levels; i++)
        {
            int prevOut = outCh;
            outCh = reversedChannels[i];
            int inCh = reversedChannels[Math.Min(i + 1, levels - 1)];
            int mirror = levels - 1 - i;
            var attention = c.UpBlockTypes[i] switch
            {
                "CrossAttnUpBlock2D" => new BlockAttention(c.NumAttentionHeads[mirror], c.TransformerLayersPerBlock[mirror], c.CrossAttentionDim[mirror], c.OnlyCrossAttention[mirror]),
                "UpBlock2D" => null,
                var other => throw new NotSupportedException($"up block type '{other}' is not supported (CrossAttnUpBlock2D, UpBlock2D are)"),
            };
            up.Add(new UNetUpBlock(inCh, prevOut, outCh, c.LayersPerBlock[mirror] + 1, i < levels - 1, s, attention));
        }
        _upBlocks = new ModuleList<UNetUpBlock>(up.ToArray());

        _convNormOut = Layers.GroupNorm(c.NormNumGroups, c.BlockOutChannels[0], c.NormEps);
        _convOut = Layers.Conv2d(c.BlockOutChannels[0], c.OutChannels, c.ConvOutKernel, padding: (c.ConvOutKernel - 1) / 2);

        register_module("conv_in", _convIn);
        register_module("time_embedding", _timeEmbedding);
        if (_addEmbedding is not null)
            register_module("add_embedding", _addEmbedding);
        register_module("down_blocks", _downBlocks);
        register_module("mid_block", _midBlock);
        register_module("up_blocks", _upBlocks);
        register_module("conv_norm_out", _convNormOut);
        register_module("conv_out", _convOut);
    }

    /// <summary>One timestep for the whole batch (float: LMS/Euler pass fractional timesteps).</summary>
    /// <param name="cache">DeepCache: with <paramref name="reuse"/> the shallow path on its features; else a full pass that refreshes them.</param>
    /// <param name="control">ControlNet residuals added to the skips and the mid block's output (none: the plain UNet).</param>
    public Tensor Forward(Tensor sample, float timestep, TextConditioning conditioning, DeepFeatureCache? cache = null, bool reuse = false,
        ControlNetResiduals? control = null)
    {
        using var t = tensor(timestep, ScalarType.Float32, sample.device);
        return Forward(sample, t, conditioning, cache, reuse, control);
    }

    /// <summary>One timestep for the whole batch, conditioned on text embeddings alone.</summary>
    public Tensor Forward(Tensor sample, float timestep, Tensor encoderHiddenStates) =>
        Forward(sample, timestep, new TextConditioning(encoderHiddenStates));

    /// <summary>Per-row timesteps, conditioned on text embeddings alone.</summary>
    public Tensor Forward(Tensor sample, Tensor timesteps, Tensor encoderHiddenStates) =>
        Forward(sample, timesteps, new TextConditioning(encoderHiddenStates));

    /// <param name="sample">[B, in_channels, h, w] latents.</param>
    /// <param name="timesteps">a 0-d tensor, or one timestep per batch row [B].</param>
    /// <param name="conditioning">text embeddings [B, T, cross_attention_dim] (T = 77 per prompt chunk).</param>
    /// <param name="cache">DeepCache: stores the next-to-last up block's output on a full pass; with <paramref name="reuse"/>
    /// runs only conv_in, the first down block and the last up block on it.</param>
    /// <param name="control">ControlNet residuals: after the down pass, skip i += Down[i]; the mid block's output += Mid
    /// (diffusers' down_block_additional_residuals / mid_block_additional_residual).</param>
    public Tensor Forward(Tensor sample, Tensor timesteps, TextConditioning conditioning, DeepFeatureCache? cache = null, bool reuse = false,
        ControlNetResiduals? control = null)
    {
        var encoderHiddenStates = conditioning.EncoderHiddenStates;
        if (sample.dim() != 4 || sample.shape[1] != Config.InChannels)
            throw new ArgumentException($"UNet sample must be [B, {Config.InChannels}, h, w], got [{string.Join(", ", sample.shape)}]");
        using var scope = NewDisposeScope();
        long batch = sample.shape[0];
        // diffusers: if the size is not a multiple of the total down factor, each upsampler gets the skip's size.
        bool explicitUpsampleSize = sample.shape[2] % Config.DownFactor != 0 || sample.shape[3] % Config.DownFactor != 0;

        if (Config.CenterInputSample)
            sample = 2 * sample - 1.0;

        var t = timesteps.dim() == 0 ? timesteps.expand(batch) : timesteps;
        var tEmb = TimestepProjection.Embed(t.to(sample.device), Config.BlockOutChannels[0], Config.FlipSinToCos, Config.FreqShift).to(sample.dtype);
        var emb = _timeEmbedding.Forward(tEmb, conditioning.TimestepCond); // [B, time_embed_dim]
        if (_addEmbedding is not null)
            emb = emb + AddedEmbedding(conditioning, batch, sample.dtype);

        var h = _convIn.call(sample);
        var skips = new List<Tensor> { h };
        if (reuse && cache is not null)
        {
            if (control is not null)
                throw new NotSupportedException("DeepCache's shallow steps skip the blocks a ControlNet feeds: turn DeepCache off (interval 1) to use a ControlNet.");
            // The last up block takes the first skips: conv_in's output and the first down block's resnet outputs.
            var last = _upBlocks[^1];
            var (_, firstSkips) = _downBlocks[0].Forward(h, emb, encoderHiddenStates, downsample: false);
            skips.AddRange(firstSkips);
            var shallow = last.Forward(cache.Features, skips.Take(last.ResnetCount).ToList(), emb, encoderHiddenStates, null);
            return _convOut.call(Reuse.Silu(_convNormOut.call(shallow))).MoveToOuterDisposeScope();
        }
        foreach (var block in _downBlocks)
        {
            (h, var blockSkips) = block.Forward(h, emb, encoderHiddenStates);
            skips.AddRange(blockSkips);
        }

        if (control is not null)
            AddResiduals(skips, control.Down);
        h = _midBlock!.call(h, emb, encoderHiddenStates);
        if (control is not null)
            h = h + control.Mid.to(h.dtype);

        for (int i = 0; i < _upBlocks.Count; i++)
        {
            var block = _upBlocks[i];
            var blockSkips = skips.GetRange(skips.Count - block.ResnetCount, block.ResnetCount);
            skips.RemoveRange(skips.Count - block.ResnetCount, block.ResnetCount);
            long[]? upsampleSize = explicitUpsampleSize && i < _upBlocks.Count - 1 ? skips[^1].shape[2..] : null;
            h = block.Forward(h, blockSkips, emb, encoderHiddenStates, upsampleSize);
            if (cache is not null && i == _upBlocks.Count - 2)
                cache.Store(h); // [B, C, h, w]: what the last up block starts from
        }

        var output = _convOut.call(Reuse.Silu(_convNormOut.call(h)));
        return output.MoveToOuterDisposeScope();
    }

    /// <summary>skip i += residual i ([B, C_i, h_i, w_i], or [B, C_i, 1, 1] pooled), new tensors: the down pass already used the plain ones.</summary>
    static void AddResiduals(List<Tensor> skips, IReadOnlyList<Tensor> residuals)
    {
        if (residuals.Count != skips.Count)
            throw new ArgumentException($"The ControlNet gives {residuals.Count} down residuals; this UNet has {skips.Count} skip connections: it was made for another UNet.");
        for (int i = 0; i < skips.Count; i++)
        {
            long[] r = residuals[i].shape, k = skips[i].shape;
            bool pooled = r[2] == 1 && r[3] == 1; // global_pool_conditions: broadcast over h, w
            if (r[0] != k[0] || r[1] != k[1] || (!pooled && (r[2] != k[2] || r[3] != k[3])))
                throw new ArgumentException($"ControlNet residual {i} is [{string.Join(", ", residuals[i].shape)}]; the UNet's skip is [{string.Join(", ", skips[i].shape)}]: it was made for another UNet.");
            skips[i] = skips[i] + residuals[i].to(skips[i].dtype);
        }
    }

    /// <summary>SDXL's text_time embedding: each of the six time ids through the sinusoidal embedding, flattened
    /// [B, 6·d], after the pooled text embedding [B, P], through add_embedding → [B, time_embed_dim].</summary>
    Tensor AddedEmbedding(TextConditioning conditioning, long batch, ScalarType dtype) =>
        _addEmbedding!.call(TextTimeInputs(conditioning, batch, Config, dtype, "This UNet"));

    /// <summary>add_embedding's input for text_time (the UNet's and a ControlNet's): [B, P + 6·d] = [pooled | sinusoidal(time ids)].</summary>
    internal static Tensor TextTimeInputs(TextConditioning conditioning, long batch, UNet2DConditionConfig config, ScalarType dtype, string owner)
    {
        if (conditioning.Pooled is not { } textEmbeds || conditioning.TimeIds is not { } timeIds)
            throw new ArgumentException($"{owner} (addition_embed_type text_time, SDXL) needs the pooled text embedding and the six time ids.");
        // Six time ids for a base model, five (the aesthetic score instead of the target size) for a refiner: P + n·d inputs.
        if (timeIds.shape[0] != batch || textEmbeds.shape[0] != batch || textEmbeds.shape[1] + timeIds.shape[1] * config.AdditionTimeEmbedDim != config.ProjectionClassEmbeddingsInputDim)
            throw new ArgumentException($"SDXL conditioning must be text_embeds [{batch}, P] and time_ids [{batch}, n] with P + n × {config.AdditionTimeEmbedDim} = " +
                $"{config.ProjectionClassEmbeddingsInputDim} (SDXL: n = 6, a refiner 5); got [{string.Join(", ", textEmbeds.shape)}] and [{string.Join(", ", timeIds.shape)}].");
        var timeEmbeds = TimestepProjection.Embed(timeIds.flatten(), config.AdditionTimeEmbedDim, config.FlipSinToCos, config.FreqShift)
            .reshape(batch, -1);                                                                   // [B, n·d]
        return cat([textEmbeds.to(ScalarType.Float32), timeEmbeds], -1).to(dtype);                 // [B, P + 6·d]
    }
}
