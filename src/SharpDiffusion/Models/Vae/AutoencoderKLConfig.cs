using SharpDiffusion.Configuration;

namespace SharpDiffusion.Models.Vae;

/// <summary>diffusers' AutoencoderKL config with its defaults.</summary>
public sealed record AutoencoderKLConfig
{
    public int InChannels { get; init; } = 3;
    public int OutChannels { get; init; } = 3;
    public int[] BlockOutChannels { get; init; } = [64];
    public int LayersPerBlock { get; init; } = 1;
    public int LatentChannels { get; init; } = 4;
    public int NormNumGroups { get; init; } = 32;
    public int SampleSize { get; init; } = 32;
    public double ScalingFactor { get; init; } = 0.18215;
    /// <summary>diffusers' force_upcast: the VAE overflows in float16 (SDXL's does), so it runs in float32 when the model computes in float16.</summary>
    public bool ForceUpcast { get; init; } = true;
    public bool MidBlockAddAttention { get; init; } = true;
    /// <summary>Latents are (z − shift_factor) · scaling_factor (SD3 0.0609, Flux 0.1159); diffusers' null is 0 (SD 1.x/2.x/XL).</summary>
    public double ShiftFactor { get; init; }
    /// <summary>Whether a 1×1 quant_conv follows the encoder (SD) or not (SD3, Flux); absent, the weights hold none.</summary>
    public bool UseQuantConv { get; init; } = true;
    /// <summary>Whether a 1×1 post_quant_conv precedes the decoder (SD) or not (SD3, Flux).</summary>
    public bool UsePostQuantConv { get; init; } = true;

    /// <summary>Image pixels per latent pixel: 2^(levels − 1), 8 for SD.</summary>
    public int ScaleFactor => 1 << (BlockOutChannels.Length - 1);

    /// <summary>Reads and validates every key before anything is built (types, ranges, GroupNorm divisibility,
    /// list lengths); scaling_factor must be positive, or latents would be scaled to nothing or flipped.</summary>
    public static AutoencoderKLConfig From(JsonConfig c)
    {
        var d = new AutoencoderKLConfig();
        const int maxChannels = UNet.UNet2DConditionConfig.MaxChannels;
        var blockOut = c.GetIntArray("block_out_channels", d.BlockOutChannels, 1, maxChannels);
        if (blockOut.Length is 0 or > 16)
            throw c.Invalid("block_out_channels", blockOut, "it must list 1 to 16 blocks");
        foreach (var key in new[] { "down_block_types", "up_block_types" })
        {
            string expected = key == "down_block_types" ? "DownEncoderBlock2D" : "UpDecoderBlock2D";
            var types = c.GetStringArray(key, Enumerable.Repeat(expected, blockOut.Length).ToArray());
            if (types.Length != blockOut.Length)
                throw c.Invalid(key, types, $"it must have one entry per block_out_channels entry ({blockOut.Length})");
            if (types.Any(t => t != expected))
                throw new NotSupportedException($"Config {c.Source}: {key} must all be {expected}");
        }
        if (c.GetString("act_fn", "silu") != "silu")
            throw new NotSupportedException($"Config {c.Source}: act_fn '{c.GetString("act_fn", "")}' is not supported (only 'silu')");
        int groups = c.GetInt("norm_num_groups", d.NormNumGroups, 1, maxChannels);
        foreach (int ch in blockOut)
            if (ch % groups != 0)
                throw c.Invalid("norm_num_groups", groups, $"it must divide every block_out_channels entry ({ch} is not a multiple; GroupNorm splits channels into equal groups)");
        return new AutoencoderKLConfig
        {
            InChannels = c.GetInt("in_channels", d.InChannels, 1, maxChannels),
            OutChannels = c.GetInt("out_channels", d.OutChannels, 1, maxChannels),
            BlockOutChannels = blockOut,
            LayersPerBlock = c.GetInt("layers_per_block", d.LayersPerBlock, 1, 1000),
            LatentChannels = c.GetInt("latent_channels", d.LatentChannels, 1, maxChannels),
            NormNumGroups = groups,
            SampleSize = c.GetInt("sample_size", d.SampleSize, 1, 1 << 16),
            ScalingFactor = c.GetDouble("scaling_factor", d.ScalingFactor, above: 0),
            ShiftFactor = c.GetDouble("shift_factor", 0),
            UseQuantConv = c.GetBool("use_quant_conv", true),
            UsePostQuantConv = c.GetBool("use_post_quant_conv", true),
            MidBlockAddAttention = c.GetBool("mid_block_add_attention", true),
            ForceUpcast = c.GetBool("force_upcast", true),
        };
    }

    /// <summary>A lower bound on the parameter count: the second 3×3 convolution of every encoder (L per level) and decoder (L+1) resnet.</summary>
    public double MinimumParameterCount() =>
        BlockOutChannels.Sum(ch => (2.0 * LayersPerBlock + 1) * 9 * (double)ch * ch);
}
