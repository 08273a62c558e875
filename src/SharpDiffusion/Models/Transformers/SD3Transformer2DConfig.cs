using SharpDiffusion.Configuration;
using SharpDiffusion.Models.UNet;

namespace SharpDiffusion.Models.Transformers;

/// <summary>diffusers' SD3Transformer2DModel config keys with their defaults (SD3 Medium's sizes but for the layers).</summary>
public sealed record SD3Transformer2DConfig
{
    public int SampleSize { get; init; } = 128;
    public int PatchSize { get; init; } = 2;
    public int InChannels { get; init; } = 16;
    public int NumLayers { get; init; } = 18;
    public int AttentionHeadDim { get; init; } = 64;
    public int NumAttentionHeads { get; init; } = 18;
    public int JointAttentionDim { get; init; } = 4096;
    public int CaptionProjectionDim { get; init; } = 1152;
    public int PooledProjectionDim { get; init; } = 2048;
    public int OutChannels { get; init; } = 16;
    /// <summary>The side of the stored position table, in patches; diffusers' null (no cropping) is not supported: such a
    /// folder stores no table, and loading names the missing pos_embed.pos_embed.</summary>
    public int PosEmbedMaxSize { get; init; } = 96;
    /// <summary>The blocks with a second, image-only attention (SD3.5 Medium's MMDiT-X); empty for SD3.0 and SD3.5 Large.</summary>
    public int[] DualAttentionLayers { get; init; } = [];
    /// <summary>null or "rms_norm" (SD3.5): q and k normalised per head before attention.</summary>
    public string? QkNorm { get; init; }

    /// <summary>The width of both token streams: heads × head size.</summary>
    public int InnerDim => NumAttentionHeads * AttentionHeadDim;

    /// <summary>Reads and validates every key before anything is built; what this port does not do is refused in one line.</summary>
    public static SD3Transformer2DConfig From(JsonConfig c)
    {
        var d = new SD3Transformer2DConfig();
        const int maxChannels = UNet2DConditionConfig.MaxChannels;
        int layers = c.GetInt("num_layers", d.NumLayers, 1, 1000);
        int heads = c.GetInt("num_attention_heads", d.NumAttentionHeads, 1, 1024);
        int headDim = c.GetInt("attention_head_dim", d.AttentionHeadDim, 1, 1024);
        if ((long)heads * headDim > maxChannels)
            throw c.Invalid("num_attention_heads", heads, $"heads × attention_head_dim ({heads} × {headDim}) must be at most {maxChannels}");
        int inner = heads * headDim;
        int caption = c.GetInt("caption_projection_dim", d.CaptionProjectionDim, 1, maxChannels);
        if (caption != inner)
            throw c.Invalid("caption_projection_dim", caption, $"it must equal num_attention_heads × attention_head_dim ({inner}): the joint blocks take the text at that width");
        var dual = c.GetIntArray("dual_attention_layers", d.DualAttentionLayers, 0, layers - 1);
        string? qkNorm = c.GetStringOrNull("qk_norm");
        if (qkNorm is not (null or "rms_norm"))
            throw new NotSupportedException($"Config {c.Source}: qk_norm '{qkNorm}' is not supported (null or 'rms_norm', SD3.5's)");
        int inChannels = c.GetInt("in_channels", d.InChannels, 1, maxChannels);
        return new SD3Transformer2DConfig
        {
            SampleSize = c.GetInt("sample_size", d.SampleSize, 1, 1 << 16),
            PatchSize = c.GetInt("patch_size", d.PatchSize, 1, 64),
            InChannels = inChannels,
            NumLayers = layers,
            AttentionHeadDim = headDim,
            NumAttentionHeads = heads,
            JointAttentionDim = c.GetInt("joint_attention_dim", d.JointAttentionDim, 1, maxChannels),
            CaptionProjectionDim = caption,
            PooledProjectionDim = c.GetInt("pooled_projection_dim", d.PooledProjectionDim, 1, maxChannels),
            OutChannels = c.GetInt("out_channels", inChannels, 1, maxChannels), // diffusers: null means in_channels
            PosEmbedMaxSize = c.GetInt("pos_embed_max_size", d.PosEmbedMaxSize, 1, 4096),
            DualAttentionLayers = dual,
            QkNorm = qkNorm,
        };
    }

    /// <summary>A lower bound on the parameter count: each block's q/k/v/out projections and feed-forward (12·D²) and the
    /// position table (max²·D), so a config far larger than its weights is refused before anything is built.</summary>
    public double MinimumParameterCount() => NumLayers * 12.0 * InnerDim * InnerDim + (double)PosEmbedMaxSize * PosEmbedMaxSize * InnerDim;
}
