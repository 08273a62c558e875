using SharpDiffusion.Models;

namespace SharpDiffusion.Cli.Bench;

/// <summary>
/// The component configs of a Stable Diffusion 3 / 3.5 diffusers folder (config.json contents as stabilityai publishes
/// them, keys that equal diffusers' defaults omitted), for writing full-size folders with random weights. The three
/// published sizes share the text encoders (CLIP ViT-L/14 and OpenCLIP bigG/14 with projections, T5 v1.1 XXL), the
/// 16-channel VAE (x = (z − 0.0609)·1.5305) and the flow-matching scheduler (shift 3.0); they differ in the MMDiT.
/// </summary>
public sealed record Sd3Architecture(string Name, string TransformerConfig)
{
    public string TextEncoderConfig { get; init; } = ClipL;
    public string TextEncoder2Config { get; init; } = StableDiffusionXL.TextEncoder2Config;
    public string TextEncoder3Config { get; init; } = T5Xxl;
    public string VaeConfig { get; init; } = Vae;
    public string SchedulerConfig { get; init; } = FlowMatch;

    /// <summary>The architectures `bench --arch` takes, by name.</summary>
    public static IReadOnlyDictionary<string, Sd3Architecture> Published { get; } = new Dictionary<string, Sd3Architecture>
    {
        ["sd3-medium"] = new("SD3 Medium", Transformer(layers: 24, heads: 24, posEmbedMaxSize: 192, qkNorm: false, dualLayers: 0)),
        // MMDiT-X: a second, image-only attention in blocks 0-12.
        ["sd3.5-medium"] = new("SD3.5 Medium", Transformer(layers: 24, heads: 24, posEmbedMaxSize: 384, qkNorm: true, dualLayers: 13)),
        ["sd3.5-large"] = new("SD3.5 Large", Transformer(layers: 38, heads: 38, posEmbedMaxSize: 192, qkNorm: true, dualLayers: 0)),
    };

    /// <summary>stabilityai's transformer/config.json: heads of 64 channels, caption_projection_dim = heads·64, T5's 4096-wide
    /// text, CLIP-L's 768 + bigG's 1280 pooled.</summary>
    static string Transformer(int layers, int heads, int posEmbedMaxSize, bool qkNorm, int dualLayers) => $$"""
        {
          "_class_name": "SD3Transformer2DModel",
          "attention_head_dim": 64,
          "caption_projection_dim": {{heads * 64}},
          "dual_attention_layers": [{{string.Join(", ", Enumerable.Range(0, dualLayers))}}],
          "in_channels": 16,
          "joint_attention_dim": 4096,
          "num_attention_heads": {{heads}},
          "num_layers": {{layers}},
          "out_channels": 16,
          "patch_size": 2,
          "pooled_projection_dim": 2048,
          "pos_embed_max_size": {{posEmbedMaxSize}},
          "qk_norm": {{(qkNorm ? "\"rms_norm\"" : "null")}},
          "sample_size": 128
        }
        """;

    /// <summary>openai/clip-vit-large-patch14's text half with its projection (SD 1.5's encoder plus text_projection).</summary>
    const string ClipL = """
        {
          "architectures": ["CLIPTextModelWithProjection"],
          "bos_token_id": 0,
          "eos_token_id": 2,
          "hidden_act": "quick_gelu",
          "hidden_size": 768,
          "intermediate_size": 3072,
          "layer_norm_eps": 1e-05,
          "max_position_embeddings": 77,
          "num_attention_heads": 12,
          "num_hidden_layers": 12,
          "pad_token_id": 1,
          "projection_dim": 768,
          "vocab_size": 49408
        }
        """;

    /// <summary>google/t5-v1_1-xxl's encoder (text_encoder_3): 24 layers, d_model 4096, 64 heads of 64, gated-GELU d_ff 10240.</summary>
    const string T5Xxl = """
        {
          "architectures": ["T5EncoderModel"],
          "d_ff": 10240,
          "d_kv": 64,
          "d_model": 4096,
          "dense_act_fn": "gelu_new",
          "eos_token_id": 1,
          "feed_forward_proj": "gated-gelu",
          "is_gated_act": true,
          "layer_norm_epsilon": 1e-06,
          "model_type": "t5",
          "num_heads": 64,
          "num_layers": 24,
          "pad_token_id": 0,
          "relative_attention_max_distance": 128,
          "relative_attention_num_buckets": 32,
          "tie_word_embeddings": false,
          "vocab_size": 32128
        }
        """;

    /// <summary>SDXL's VAE shape with 16 latent channels, no quant convs, and SD3's latent shift and scale.</summary>
    const string Vae = """
        {
          "_class_name": "AutoencoderKL",
          "act_fn": "silu",
          "block_out_channels": [128, 256, 512, 512],
          "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
          "force_upcast": true,
          "in_channels": 3,
          "latent_channels": 16,
          "layers_per_block": 2,
          "norm_num_groups": 32,
          "out_channels": 3,
          "sample_size": 1024,
          "scaling_factor": 1.5305,
          "shift_factor": 0.0609,
          "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
          "use_post_quant_conv": false,
          "use_quant_conv": false
        }
        """;

    const string FlowMatch = """
        {
          "_class_name": "FlowMatchEulerDiscreteScheduler",
          "num_train_timesteps": 1000,
          "shift": 3.0
        }
        """;
}
