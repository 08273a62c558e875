using System.Text.Json;
using System.Text.Json.Nodes;
using SharpDiffusion.Configuration;
using SharpDiffusion.Models.Clip;
using SharpDiffusion.Models.UNet;
using SharpDiffusion.Models.Vae;

namespace SharpDiffusion.Training;

/// <summary>
/// The architecture of a small text-to-image model, written as the diffusers/transformers config.json files it is
/// saved with. Models are always built from those JSON files (through the loaders' own config readers), so what is
/// trained is exactly what <c>FromPretrained</c> rebuilds.
/// </summary>
public sealed record ShapesModelSpec
{
    public int ImageSize { get; init; } = 64;
    // Text encoder: the real CLIP vocabulary; the token embedding (49408 × hidden) dominates the size.
    public int TextHidden { get; init; } = 64;
    public int TextLayers { get; init; } = 2;
    public int TextHeads { get; init; } = 4;
    public int TextIntermediate { get; init; } = 256;
    public int[] UNetChannels { get; init; } = [32, 64, 128];
    public int UNetLayersPerBlock { get; init; } = 1;
    public int UNetHeads { get; init; } = 4;
    // Few channels per group erase per-image colour offsets (16 channels in 16 groups is instance norm), so groups hold ≥ 4:
    // 32 channels in 8 groups.
    public int UNetGroups { get; init; } = 8;
    public int[] VaeChannels { get; init; } = [16, 32, 64];
    public int VaeGroups { get; init; } = 4;
    public int LatentChannels { get; init; } = 4;

    /// <summary>The model committed as models/sharp-shapes: 64×64 images, 16×16×4 latents (a VAE factor of 4: at 8, 8×8×4
    /// latents, the VAE's own encoding (posterior mean) of the exact pictures of the held-out prompts decoded to the wrong colour for half of them).</summary>
    public static ShapesModelSpec SharpShapes { get; } = new();

    /// <summary>A micro model for smoke tests (seconds per hundred steps).</summary>
    public static ShapesModelSpec Micro { get; } = new()
    {
        TextHidden = 16, TextLayers = 1, TextHeads = 2, TextIntermediate = 32,
        UNetChannels = [16, 32], UNetHeads = 2, UNetGroups = 4,
        VaeChannels = [8, 8, 8, 8], VaeGroups = 2,
    };

    public int VaeFactor => 1 << (VaeChannels.Length - 1);
    public int LatentSize => ImageSize / VaeFactor;

    public JsonObject TextEncoderConfig() => new()
    {
        ["architectures"] = new JsonArray("CLIPTextModel"),
        ["model_type"] = "clip_text_model",
        ["vocab_size"] = 49408,
        ["hidden_size"] = TextHidden,
        ["intermediate_size"] = TextIntermediate,
        ["num_hidden_layers"] = TextLayers,
        ["num_attention_heads"] = TextHeads,
        ["max_position_embeddings"] = 77,
        ["hidden_act"] = "quick_gelu",
        ["layer_norm_eps"] = 1e-5,
        ["projection_dim"] = TextHidden,
        ["bos_token_id"] = 49406,
        ["eos_token_id"] = 49407,
        ["pad_token_id"] = 1,
        ["torch_dtype"] = "float16",
    };

    public JsonObject UNetConfig()
    {
        int n = UNetChannels.Length;
        // Cross-attention everywhere but the lowest resolution's down block, as SD does.
        var down = Enumerable.Range(0, n).Select(i => i < n - 1 ? "CrossAttnDownBlock2D" : "DownBlock2D");
        var up = Enumerable.Range(0, n).Select(i => i == 0 ? "UpBlock2D" : "CrossAttnUpBlock2D");
        return new JsonObject
        {
            ["_class_name"] = "UNet2DConditionModel",
            ["sample_size"] = LatentSize,
            ["in_channels"] = LatentChannels,
            ["out_channels"] = LatentChannels,
            ["down_block_types"] = new JsonArray([.. down.Select(s => (JsonNode)s)]),
            ["mid_block_type"] = "UNetMidBlock2DCrossAttn",
            ["up_block_types"] = new JsonArray([.. up.Select(s => (JsonNode)s)]),
            ["block_out_channels"] = new JsonArray([.. UNetChannels.Select(c => (JsonNode)c)]),
            ["layers_per_block"] = UNetLayersPerBlock,
            ["attention_head_dim"] = UNetHeads,
            ["cross_attention_dim"] = TextHidden,
            ["norm_num_groups"] = UNetGroups,
            ["norm_eps"] = 1e-5,
            ["flip_sin_to_cos"] = true,
            ["freq_shift"] = 0,
            ["act_fn"] = "silu",
        };
    }

    public JsonObject VaeConfig(double scalingFactor) => new()
    {
        ["_class_name"] = "AutoencoderKL",
        ["in_channels"] = 3,
        ["out_channels"] = 3,
        ["down_block_types"] = new JsonArray([.. VaeChannels.Select(_ => (JsonNode)"DownEncoderBlock2D")]),
        ["up_block_types"] = new JsonArray([.. VaeChannels.Select(_ => (JsonNode)"UpDecoderBlock2D")]),
        ["block_out_channels"] = new JsonArray([.. VaeChannels.Select(c => (JsonNode)c)]),
        ["layers_per_block"] = 1,
        ["latent_channels"] = LatentChannels,
        ["norm_num_groups"] = VaeGroups,
        ["sample_size"] = ImageSize,
        ["scaling_factor"] = scalingFactor,
        ["act_fn"] = "silu",
    };

    /// <summary>The DDPM training schedule and the sampler the model ships with: DDIM with trailing spacing.
    /// SD's scaled-linear β (ᾱ_T ≈ 0.005), not DDPM's linear one (ᾱ_T ≈ 4·10⁻⁵): with ε-prediction an x₀ estimate
    /// carries the ε error times √((1−ᾱ)/ᾱ), 158× at the linear schedule's last step; a model trained for minutes
    /// is not accurate enough for that, and its samples diverged (latent std 11 instead of 1).</summary>
    public static JsonObject SchedulerConfig() => new()
    {
        ["_class_name"] = "DDIMScheduler",
        ["num_train_timesteps"] = 1000,
        ["beta_start"] = 0.00085,
        ["beta_end"] = 0.012,
        ["beta_schedule"] = "scaled_linear",
        ["clip_sample"] = false,
        ["set_alpha_to_one"] = false,
        ["steps_offset"] = 1,
        ["timestep_spacing"] = "trailing",
        ["prediction_type"] = "epsilon",
    };

    public ClipTextModel CreateTextEncoder() => new ClipTextModel(ClipTextConfig.From(Parsed(TextEncoderConfig(), "text_encoder")));

    public UNet2DConditionModel CreateUNet() => new UNet2DConditionModel(UNet2DConditionConfig.From(Parsed(UNetConfig(), "unet")));

    public AutoencoderKL CreateVae() => new AutoencoderKL(AutoencoderKLConfig.From(Parsed(VaeConfig(1.0), "vae")));

    // Through text, exactly as the saved config.json will be read.
    static JsonConfig Parsed(JsonObject json, string name) => JsonConfig.Parse(json.ToJsonString(), name);

    public string ToJson() => JsonSerializer.Serialize(this);
}
