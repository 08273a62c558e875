namespace SharpDiffusion.Models;

/// <summary>
/// The component configs of stabilityai/stable-diffusion-xl-base-1.0 (config.json contents as published, keys that equal
/// diffusers' defaults omitted), for building full-size SDXL models with random weights (benchmarks). The first text
/// encoder is SD 1.5's CLIP ViT-L/14 (<see cref="StableDiffusion15.TextEncoderConfig"/>).
/// </summary>
public static class StableDiffusionXL
{
    public const string UNetConfig = """
        {
          "_class_name": "UNet2DConditionModel",
          "act_fn": "silu",
          "addition_embed_type": "text_time",
          "addition_time_embed_dim": 256,
          "attention_head_dim": [5, 10, 20],
          "block_out_channels": [320, 640, 1280],
          "center_input_sample": false,
          "cross_attention_dim": 2048,
          "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
          "downsample_padding": 1,
          "flip_sin_to_cos": true,
          "freq_shift": 0,
          "in_channels": 4,
          "layers_per_block": 2,
          "mid_block_scale_factor": 1,
          "norm_eps": 1e-05,
          "norm_num_groups": 32,
          "out_channels": 4,
          "projection_class_embeddings_input_dim": 2816,
          "sample_size": 128,
          "transformer_layers_per_block": [1, 2, 10],
          "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
          "use_linear_projection": true
        }
        """;

    public const string VaeConfig = """
        {
          "_class_name": "AutoencoderKL",
          "act_fn": "silu",
          "block_out_channels": [128, 256, 512, 512],
          "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
          "force_upcast": true,
          "in_channels": 3,
          "latent_channels": 4,
          "layers_per_block": 2,
          "norm_num_groups": 32,
          "out_channels": 3,
          "sample_size": 1024,
          "scaling_factor": 0.13025,
          "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"]
        }
        """;

    /// <summary>The text half of laion/CLIP-ViT-bigG-14 (OpenCLIP ViT-bigG/14), with its projection.</summary>
    public const string TextEncoder2Config = """
        {
          "architectures": ["CLIPTextModelWithProjection"],
          "bos_token_id": 0,
          "eos_token_id": 2,
          "hidden_act": "gelu",
          "hidden_size": 1280,
          "intermediate_size": 5120,
          "layer_norm_eps": 1e-05,
          "max_position_embeddings": 77,
          "num_attention_heads": 20,
          "num_hidden_layers": 32,
          "pad_token_id": 1,
          "projection_dim": 1280,
          "vocab_size": 49408
        }
        """;

    public const string SchedulerConfig = """
        {
          "_class_name": "EulerDiscreteScheduler",
          "beta_end": 0.012,
          "beta_schedule": "scaled_linear",
          "beta_start": 0.00085,
          "interpolation_type": "linear",
          "num_train_timesteps": 1000,
          "prediction_type": "epsilon",
          "sample_max_value": 1.0,
          "steps_offset": 1,
          "timestep_spacing": "leading",
          "trained_betas": null,
          "use_karras_sigmas": false
        }
        """;
}
