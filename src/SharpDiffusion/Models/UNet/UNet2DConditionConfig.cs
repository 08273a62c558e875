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
    /// <summary>null (SD 1.x/2.x) or "text_time" (SDXL: the pooled text embedding and six size/crop numbers join the time embedding).</summary>
    public string? AdditionEmbedType { get; init; }
    /// <summary>text_time: the sinusoidal embedding size of each of the six time ids (SDXL 256).</summary>
    public int AdditionTimeEmbedDim { get; init; }
    /// <summary>text_time: add_embedding's input, pooled text dim + 6 × addition_time_embed_dim (SDXL 1280 + 1536 = 2816).</summary>
    public int ProjectionClassEmbeddingsInputDim { get; init; }
    /// <summary>LCM-distilled UNets: the width of the guidance embedding added to the timestep embedding (0 = none).</summary>
    public int TimeCondProjDim { get; init; }

    public int TimeEmbedDim => BlockOutChannels[0] * 4;

    /// <summary>text_time: the pooled text embedding's width the UNet expects (input dim − 6 time ids).</summary>
    public int PooledTextDim => ProjectionClassEmbeddingsInputDim - 6 * AdditionTimeEmbedDim;

    /// <summary>How much the UNet downsamples: 2^(levels − 1).</summary>
    public int DownFactor => 1 << (BlockOutChannels.Length - 1);

    /// <summary>Channel counts above this are refused as config errors (SDXL's largest is 1280; this keeps
    /// products such as the time embedding's 4·channels inside int).</summary>
    public const int MaxChannels = 1 << 16;

    static readonly string[] DownTypes = ["CrossAttnDownBlock2D", "DownBlock2D"];
    static readonly string[] UpTypes = ["CrossAttnUpBlock2D", "UpBlock2D"];

    /// <summary>Reads and validates every key before anything is built: types, ranges, divisibility (GroupNorm
    /// groups and attention heads must divide each block's channels) and per-block list lengths.</summary>
    public static UNet2DConditionConfig From(JsonConfig c)
    {
        var d = new UNet2DConditionConfig();
        var blockOut = c.GetIntArray("block_out_channels", d.BlockOutChannels, 1, MaxChannels);
        var down = c.GetStringArray("down_block_types", d.DownBlockTypes);
        var up = c.GetStringArray("up_block_types", d.UpBlockTypes);
        int n = down.Length;
        if (blockOut.Length == 0)
            throw c.Invalid("block_out_channels", blockOut, "it must list at least one block");
        if (blockOut.Length > 16)
            throw c.Invalid("block_out_channels", blockOut, "it has more than 16 blocks (each halves the resolution)");
        if (n != blockOut.Length)
            throw c.Invalid("down_block_types", down, $"it must have one entry per block_out_channels entry ({blockOut.Length})");
        if (up.Length != n)
            throw c.Invalid("up_block_types", up, $"it must have one entry per block_out_channels entry ({blockOut.Length})");
        foreach (var (key, types, allowed) in new[] { ("down_block_types", down, DownTypes), ("up_block_types", up, UpTypes) })
            if (types.FirstOrDefault(t => !allowed.Contains(t)) is { } bad)
                throw new NotSupportedException($"Config {c.Source}: '{key}' contains '{bad}', which is not supported ({string.Join(", ", allowed)} are).");

        Unsupported(c, "class_embed_type");
        string? addition = c.Has("addition_embed_type") ? c.GetString("addition_embed_type", "") : null;
        if (addition is not (null or "text_time"))
            throw new NotSupportedException($"Config {c.Source}: addition_embed_type '{addition}' is not supported (only 'text_time', SDXL's)");
        int timeIdDim = addition is null ? 0 : c.GetInt("addition_time_embed_dim", 0, 1, MaxChannels);
        int additionInput = addition is null ? 0 : c.GetInt("projection_class_embeddings_input_dim", 0, 6 * timeIdDim + 1, 1 << 20);
        int timeCondProjDim = c.Has("time_cond_proj_dim") ? c.GetInt("time_cond_proj_dim", 0, 1, MaxChannels) : 0;
        Unsupported(c, "encoder_hid_dim");
        Unsupported(c, "reverse_transformer_layers_per_block");
        if (c.GetString("time_embedding_type", "positional") != "positional")
            throw new NotSupportedException($"Config {c.Source}: time_embedding_type '{c.GetString("time_embedding_type", "")}' is not supported (only 'positional')");
        if (c.GetString("resnet_time_scale_shift", "default") != "default")
            throw new NotSupportedException($"Config {c.Source}: resnet_time_scale_shift '{c.GetString("resnet_time_scale_shift", "")}' is not supported (only 'default')");
        if (c.GetString("act_fn", "silu") != "silu")
            throw new NotSupportedException($"Config {c.Source}: act_fn '{c.GetString("act_fn", "")}' is not supported (only 'silu')");
        string mid = c.GetString("mid_block_type", d.MidBlockType);
        if (mid != "UNetMidBlock2DCrossAttn")
            throw new NotSupportedException($"Config {c.Source}: mid_block_type '{mid}' is not supported (only 'UNetMidBlock2DCrossAttn')");

        int groups = c.GetInt("norm_num_groups", 32, 1, MaxChannels);
        foreach (int ch in blockOut)
            if (ch % groups != 0)
                throw c.Invalid("norm_num_groups", groups, $"it must divide every block_out_channels entry ({ch} is not a multiple; GroupNorm splits channels into equal groups)");

        // diffusers: num_attention_heads = num_attention_heads or attention_head_dim (a historical misnomer).
        string headsKey = c.Has("num_attention_heads") ? "num_attention_heads" : "attention_head_dim";
        var heads = c.GetPerBlockInt(headsKey, 8, n, 1, MaxChannels);
        for (int i = 0; i < n; i++)
            if (blockOut[i] % heads[i] != 0)
                throw c.Invalid(headsKey, c.IsArray(headsKey) ? heads : heads[i], $"the heads must divide block {i}'s {blockOut[i]} channels");

        int[] kernels = [c.GetInt("conv_in_kernel", 3, 1, 15), c.GetInt("conv_out_kernel", 3, 1, 15)];
        foreach (var (key, k) in new[] { ("conv_in_kernel", kernels[0]), ("conv_out_kernel", kernels[1]) })
            if (k % 2 == 0)
                throw c.Invalid(key, k, "it must be odd (the padding (k-1)/2 keeps the size only for odd kernels)");

        return new UNet2DConditionConfig
        {
            SampleSize = c.Has("sample_size") ? c.GetInt("sample_size", 0, 1, 1 << 16) : null,
            InChannels = c.GetInt("in_channels", d.InChannels, 1, MaxChannels),
            OutChannels = c.GetInt("out_channels", d.OutChannels, 1, MaxChannels),
            CenterInputSample = c.GetBool("center_input_sample", false),
            FlipSinToCos = c.GetBool("flip_sin_to_cos", true),
            FreqShift = c.GetDouble("freq_shift", 0),
            DownBlockTypes = down,
            MidBlockType = mid,
            UpBlockTypes = up,
            BlockOutChannels = blockOut,
            LayersPerBlock = c.GetPerBlockInt("layers_per_block", 2, n, 1, 1000),
            DownsamplePadding = c.GetInt("downsample_padding", 1, 0, 1),
            MidBlockScaleFactor = c.GetDouble("mid_block_scale_factor", 1, above: 0),
            NormNumGroups = groups,
            NormEps = c.GetDouble("norm_eps", 1e-5, above: 0),
            CrossAttentionDim = c.GetPerBlockInt("cross_attention_dim", 1280, n, 1, MaxChannels),
            TransformerLayersPerBlock = c.GetPerBlockInt("transformer_layers_per_block", 1, n, 1, 1000),
            NumAttentionHeads = heads,
            OnlyCrossAttention = c.GetPerBlockBool("only_cross_attention", false, n),
            UseLinearProjection = c.GetBool("use_linear_projection", false),
            UpcastAttention = c.GetBool("upcast_attention", false),
            ConvInKernel = kernels[0],
            ConvOutKernel = kernels[1],
            AdditionEmbedType = addition,
            AdditionTimeEmbedDim = timeIdDim,
            ProjectionClassEmbeddingsInputDim = additionInput,
            TimeCondProjDim = timeCondProjDim,
        };
    }

    /// <summary>A lower bound on the parameter count (the second 3×3 convolution of every resnet and the self-attention q/k/v/out
    /// projections of every transformer layer), in double so absurd configs cannot overflow; used to refuse a
    /// config that describes far more parameters than its weight file holds before building it.</summary>
    public double MinimumParameterCount()
    {
        double total = 0;
        for (int i = 0; i < BlockOutChannels.Length; i++)
        {
            // Level i: L down resnets and L+1 up resnets whose second 3×3 conv is ch → ch.
            double ch = BlockOutChannels[i], layers = LayersPerBlock[i];
            total += (2 * layers + 1) * 9 * ch * ch;
            if (DownBlockTypes[i] == "CrossAttnDownBlock2D")
                total += layers * TransformerLayersPerBlock[i] * 4 * ch * ch;
            if (UpBlockTypes[^(i + 1)] == "CrossAttnUpBlock2D")
                total += (layers + 1) * TransformerLayersPerBlock[i] * 4 * ch * ch;
        }
        return total;
    }

    static void Unsupported(JsonConfig c, string key)
    {
        if (c.Has(key))
            throw new NotSupportedException($"Config {c.Source}: '{key}' is set, which this UNet does not support yet (SD 1.x/2.x models leave it null)");
    }
}
