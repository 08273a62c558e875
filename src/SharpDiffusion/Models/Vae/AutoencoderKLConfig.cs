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
    public bool MidBlockAddAttention { get; init; } = true;

    /// <summary>Image pixels per latent pixel: 2^(levels − 1), 8 for SD.</summary>
    public int ScaleFactor => 1 << (BlockOutChannels.Length - 1);

    public static AutoencoderKLConfig From(JsonConfig c)
    {
        var d = new AutoencoderKLConfig();
        var blockOut = c.GetIntArray("block_out_channels", d.BlockOutChannels);
        foreach (var key in new[] { "down_block_types", "up_block_types" })
        {
            string expected = key == "down_block_types" ? "DownEncoderBlock2D" : "UpDecoderBlock2D";
            var types = c.GetStringArray(key, Enumerable.Repeat(expected, blockOut.Length).ToArray());
            if (types.Length != blockOut.Length)
                throw new InvalidDataException($"Config {c.Source}: {key} has {types.Length} entries, block_out_channels {blockOut.Length}");
            if (types.Any(t => t != expected))
                throw new NotSupportedException($"Config {c.Source}: {key} must all be {expected}");
        }
        if (c.GetString("act_fn", "silu") != "silu")
            throw new NotSupportedException($"Config {c.Source}: act_fn '{c.GetString("act_fn", "")}' is not supported (only 'silu')");
        return new AutoencoderKLConfig
        {
            InChannels = c.GetInt("in_channels", d.InChannels),
            OutChannels = c.GetInt("out_channels", d.OutChannels),
            BlockOutChannels = blockOut,
            LayersPerBlock = c.GetInt("layers_per_block", d.LayersPerBlock),
            LatentChannels = c.GetInt("latent_channels", d.LatentChannels),
            NormNumGroups = c.GetInt("norm_num_groups", d.NormNumGroups),
            SampleSize = c.GetInt("sample_size", d.SampleSize),
            ScalingFactor = c.GetDouble("scaling_factor", d.ScalingFactor),
            MidBlockAddAttention = c.GetBool("mid_block_add_attention", true),
        };
    }
}
