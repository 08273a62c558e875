using System.Text.Json.Nodes;

namespace SharpDiffusion.Models.Vae;

/// <summary>
/// diffusers' AutoencoderTiny config (TAESD, madebyollin/taesd): per level, a conv then <c>num_encoder_blocks[i]</c>
/// residual blocks on the way down (stride 2 after the first), and <c>num_decoder_blocks[i]</c> blocks then ×2 nearest
/// upsampling and a conv on the way up. Latents are the denoiser's own (scaling_factor 1: TAESD was trained on the
/// scaled latents). <see cref="NumEncoderBlocks"/> may be empty: a decoder-only file (taesd_decoder.safetensors alone).
/// </summary>
public sealed record AutoencoderTinyConfig
{
    public int InChannels { get; init; } = 3;
    public int OutChannels { get; init; } = 3;
    public int LatentChannels { get; init; } = 4;
    public int[] EncoderBlockOutChannels { get; init; } = [64, 64, 64, 64];
    public int[] DecoderBlockOutChannels { get; init; } = [64, 64, 64, 64];
    public int[] NumEncoderBlocks { get; init; } = [1, 3, 3, 3];
    public int[] NumDecoderBlocks { get; init; } = [3, 3, 3, 1];
    public int UpsamplingScalingFactor { get; init; } = 2;
    public double ScalingFactor { get; init; } = 1.0;
    public double ShiftFactor { get; init; }

    public bool HasEncoder => NumEncoderBlocks.Length > 0;

    /// <summary>Pixels per latent: the decoder upsamples between its levels.</summary>
    public int SpatialFactor => (int)Math.Pow(UpsamplingScalingFactor, DecoderBlockOutChannels.Length - 1);

    /// <summary>Reads a diffusers vae/config.json of an AutoencoderTiny; what this port cannot run is refused by key.</summary>
    public static AutoencoderTinyConfig From(JsonObject json, string path)
    {
        string Str(string key, string def) => json[key]?.GetValue<string>() ?? def;
        int[] Ints(string key, int[] def) => json[key] is JsonArray a ? [.. a.Select(v => v!.GetValue<int>())] : def;
        if (Str("act_fn", "relu") != "relu" || Str("upsample_fn", "nearest") != "nearest")
            throw new NotSupportedException($"{path}: act_fn '{Str("act_fn", "relu")}' / upsample_fn '{Str("upsample_fn", "nearest")}': only TAESD's relu and nearest are supported.");
        if ((json["latent_magnitude"]?.GetValue<double>() ?? 3) != 3 || (json["latent_shift"]?.GetValue<double>() ?? 0.5) != 0.5)
            throw new NotSupportedException($"{path}: latent_magnitude must be 3 and latent_shift 0.5 (TAESD's decoder clamp tanh(z/3)·3 is built in).");
        var config = new AutoencoderTinyConfig
        {
            InChannels = json["in_channels"]?.GetValue<int>() ?? 3,
            OutChannels = json["out_channels"]?.GetValue<int>() ?? 3,
            LatentChannels = json["latent_channels"]?.GetValue<int>() ?? 4,
            EncoderBlockOutChannels = Ints("encoder_block_out_channels", [64, 64, 64, 64]),
            DecoderBlockOutChannels = Ints("decoder_block_out_channels", [64, 64, 64, 64]),
            NumEncoderBlocks = Ints("num_encoder_blocks", [1, 3, 3, 3]),
            NumDecoderBlocks = Ints("num_decoder_blocks", [3, 3, 3, 1]),
            UpsamplingScalingFactor = json["upsampling_scaling_factor"]?.GetValue<int>() ?? 2,
            ScalingFactor = json["scaling_factor"]?.GetValue<double>() ?? 1.0,
            ShiftFactor = json["shift_factor"]?.GetValue<double>() ?? 0.0,
        };
        return config.Validated(path);
    }

    /// <summary>Refuses sizes that would not build (one line naming the file and key).</summary>
    public AutoencoderTinyConfig Validated(string path)
    {
        if (EncoderBlockOutChannels.Length != NumEncoderBlocks.Length && HasEncoder)
            throw new ArgumentException($"{path}: encoder_block_out_channels ({EncoderBlockOutChannels.Length}) and num_encoder_blocks ({NumEncoderBlocks.Length}) must have the same length.");
        if (DecoderBlockOutChannels.Length != NumDecoderBlocks.Length || DecoderBlockOutChannels.Length == 0)
            throw new ArgumentException($"{path}: decoder_block_out_channels ({DecoderBlockOutChannels.Length}) and num_decoder_blocks ({NumDecoderBlocks.Length}) must have the same, non-zero length.");
        foreach (var (key, values) in new[] { ("encoder_block_out_channels", EncoderBlockOutChannels), ("decoder_block_out_channels", DecoderBlockOutChannels),
                     ("num_encoder_blocks", NumEncoderBlocks), ("num_decoder_blocks", NumDecoderBlocks) })
            if (values.Any(v => v < (key.StartsWith("num", StringComparison.Ordinal) ? 0 : 1) || v > 4096))
                throw new ArgumentException($"{path}: {key} [{string.Join(", ", values)}] must hold sizes from 1 (blocks: 0) to 4096.");
        foreach (var (key, v) in new[] { ("in_channels", InChannels), ("out_channels", OutChannels), ("latent_channels", LatentChannels), ("upsampling_scaling_factor", UpsamplingScalingFactor) })
            if (v < 1 || v > 4096)
                throw new ArgumentException($"{path}: {key} {v} must be from 1 to 4096.");
        if (!(ScalingFactor > 0) || !double.IsFinite(ShiftFactor))
            throw new ArgumentException($"{path}: scaling_factor {ScalingFactor} must be positive and shift_factor {ShiftFactor} finite.");
        return this;
    }
}
