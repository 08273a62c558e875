namespace SharpDiffusion.Loading.SingleFile;

/// <summary>What <see cref="StableDiffusionPipeline.FromSingleFile"/> cannot read from the tensors themselves.</summary>
public sealed record SingleFileOptions
{
    /// <summary>The original LDM config (.yaml, e.g. v1-inference.yaml, v2-inference-v.yaml): attention heads
    /// (num_heads / num_head_channels), scale_factor, parameterization "v", betas, image size.</summary>
    public string? OriginalConfig { get; init; }
    /// <summary>A transformers config.json for the text encoder (heads, layers, activation) when it is not one of the
    /// standard sizes (768 = CLIP ViT-L/14, 1024 = OpenCLIP ViT-H).</summary>
    public string? TextEncoderConfig { get; init; }
    /// <summary>SDXL: a transformers config.json for the second text encoder (CLIPTextModelWithProjection) when it is not
    /// OpenCLIP ViT-bigG (width 1280).</summary>
    public string? TextEncoder2Config { get; init; }
    /// <summary>diffusers' from_single_file image_size: the default picture size (SD 1.x 512, SD 2.x 768-v 768, SDXL 1024).</summary>
    public int? ImageSize { get; init; }
    /// <summary>SD3/SD3.5: text encoder files to use with the checkpoint (clip_l, clip_g, t5xxl in transformers' layout,
    /// recognised by their tensors; one replaces the same encoder in the checkpoint), and T5's tokenizer (a spiece.model,
    /// or a folder with one).</summary>
    public IReadOnlyList<string> TextEncoders { get; init; } = [];
    /// <summary>SD3/SD3.5: a diffusers folder whose config.json files (and tokenizers, scheduler config) describe the
    /// checkpoint's components, as diffusers' from_single_file(config=...); each is checked against the weights. For
    /// models of non-standard sizes; without it the configs are inferred from the tensors.</summary>
    public string? DiffusersConfig { get; init; }
    /// <summary>Flux: the VAE file (BFL's ae.safetensors, the 16-channel VAE in the LDM layout) of a transformer file
    /// given as the model, as stable-diffusion.cpp's --vae and ComfyUI's VAE loader take it.</summary>
    public string? Vae { get; init; }
}
