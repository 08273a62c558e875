using SharpDiffusion.Configuration;

namespace SharpDiffusion.Models.UNet;

/// <summary>
/// The UNet2DConditionModel config keys SD 1.x/2.x use, with diffusers' defaults. Per-block values are expanded
/// to one entry per down block. <c>attention_head_dim</c> is, as in diffusers, the number of heads unless
/// <c>num_attention_heads</c> is given.
/// </summary>
public sealed record UNet2DConditionConfig
{
    public int? SampleSize { get; init; }
    public int InChannels { get; init; } = 4;
    public int OutChannels { get; init; } = 4;
    public bool CenterInputSample { get; init; }
    public bool FlipSinToCos { get; init; } = true;
    public double FreqShift { get; init; }
    public string[] DownBlockTypes { get; init; } = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"];
    public string MidBlockType { get; init; } = "UNetMidBlock2DCrossAttn";
    public string[] UpBlockTypes { get; init; } = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"];
    public int[] BlockOutChannels { get; init; } = [320, 640, 1280, 1280];
    public int[] LayersPerBlock { get; init; } = [2, 2, 2, 2];
    public int DownsamplePadding { get; init; } = 1;
    public double MidBlockScaleFactor { get; init; } = 1;
    public int NormNumGroups { get; init; } = 32;
    public double NormEps { get; init; } = 1e-5;
    public int[] CrossAttentionDim { get; init; } = [1280, 1280, 1280, 1280];
    public int[] TransformerLayersPerBlock { get; init; } = [1, 1, 1, 1];
    public int[] NumAttentionHeads { get; init; } = [8, 8, 8, 8];
    public bool[] OnlyCrossAttention { get; init; } = [false, false, false, false];
    public bool UseLinearProjection { get; init; }
    public bool UpcastAttention { get; init; }
    public int ConvInKernel { get; init; } = 3;
    public int ConvOutKernel { get; init; } = 3;

    public int TimeEmbedDim => BlockOutChannels[0] * 4;

    /// <summary>How much the UNet downsamples: 2^(levels − 1).</summary>
    public int DownFactor => 1 << (BlockOutChannels.Length - 1);

    public static UNet2DConditionConfig From(JsonConfig c)
    {
        var d = new UNet2DConditionConfig();
        var blockOut = c.GetIntArray("block_out_channels", d.BlockOutChannels);
        var down = c.GetStringArray("down_block_types", d.DownBlockTypes);
        var up = c.GetStringArray("up_block_types", d.UpBlockTypes);
        int n = down.Length;
        if (blockOut.Length != n || up.Length != n)
            throw new InvalidDataException($"Config {c.Source}: block_out_channels ({blockOut.Length}), down_block_types ({n}) and up_block_types ({up.Length}) must have the same length");

        Unsupported(c, "class_embed_type");
        Unsupported(c, "addition_embed_type");
        Unsupported(c, "time_cond_proj_dim");
        Unsupported(c, "encoder_hid_dim");
        Unsupported(c, "reverse_transformer_layers_per_block");
        if (c.GetString("time_embedding_type", "positional") != "positional")
            throw new NotSupportedException($"Config {c.Source}: time_embedding_type '{c.GetString("time_embedding_type", "")}' is not supported (only 'positional')");
        if (c.GetString("resnet_time_scale_shift", "default") != "default")
            throw new NotSupportedException($"Config {c.Source}: resnet_time_scale_shift '{c.GetString("resnet_time_scale_shift", "")}' is not supported (only 'default')");
        if (c.GetString("act_fn", "silu") != "silu")
            throw new NotSupportedException($"Config {c.Source}: act_fn '{c.GetString("act_fn", "")}' is not supported (only 'silu')");

        // diffusers: num_attention_heads = num_attention_heads or attention_head_dim (a historical misnomer).
        var heads = c.Has("num_attention_heads")
            ? c.GetPerBlockInt("num_attention_heads", 8, n)
            : c.GetPerBlockInt("attention_head_dim", 8, n);

        return new UNet2DConditionConfig
        {
            SampleSize = c.Has("sample_size") ? c.GetInt("sample_size", 0) : null,
            InChannels = c.GetInt("in_channels", d.InChannels),
            OutChannels = c.GetInt("out_channels", d.OutChannels),
            CenterInputSample = c.GetBool("center_input_sample", false),
            FlipSinToCos = c.GetBool("flip_sin_to_cos", true),
            FreqShift = c.GetDouble("freq_shift", 0),
            DownBlockTypes = down,
            MidBlockType = c.GetString("mid_block_type", d.MidBlockType),
            UpBlockTypes = up,
            BlockOutChannels = blockOut,
            LayersPerBlock = c.GetPerBlockInt("layers_per_block", 2, n),
            DownsamplePadding = c.GetInt("downsample_padding", 1),
            MidBlockScaleFactor = c.GetDouble("mid_block_scale_factor", 1),
            NormNumGroups = c.GetInt("norm_num_groups", 32),
            NormEps = c.GetDouble("norm_eps", 1e-5),
            CrossAttentionDim = c.GetPerBlockInt("cross_attention_dim", 1280, n),
            TransformerLayersPerBlock = c.GetPerBlockInt("transformer_layers_per_block", 1, n),
            NumAttentionHeads = heads,
            OnlyCrossAttention = c.GetPerBlockBool("only_cross_attention", false, n),
            UseLinearProjection = c.GetBool("use_linear_projection", false),
            UpcastAttention = c.GetBool("upcast_attention", false),
            ConvInKernel = c.GetInt("conv_in_kernel", 3),
            ConvOutKernel = c.GetInt("conv_out_kernel", 3),
        };
    }

    static void Unsupported(JsonConfig c, string key)
    {
        if (c.Has(key))
            throw new NotSupportedException($"Config {c.Source}: '{key}' is set, which this UNet does not support yet (SD 1.x/2.x models leave it null)");
    }
}
