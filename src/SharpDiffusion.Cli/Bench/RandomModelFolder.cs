using SharpDiffusion.Configuration;
using SharpDiffusion.Loading;
using SharpDiffusion.Models;
using SharpDiffusion.Models.Clip;
using SharpDiffusion.Models.UNet;
using SharpDiffusion.Models.Vae;
using static TorchSharp.torch;

namespace SharpDiffusion.Cli.Bench;

/// <summary>A full-size SD 1.5 or SDXL 1.0 architecture with random weights, written as a diffusers folder so the
/// benchmark measures the same loading path as a real download (with the shipped model's CLIP tokenizer, whole
/// generations too).</summary>
public static class RandomModelFolder
{
    /// <param name="tokenizer">a CLIP tokenizer folder to copy in (the shipped model's), so whole generations can run; null: none.</param>
    public static void Write(string root, ScalarType diskType, bool xl = false, string? tokenizer = null)
    {
        Directory.CreateDirectory(root);
        if (tokenizer is not null)
            foreach (var name in xl ? new[] { "tokenizer", "tokenizer_2" } : ["tokenizer"])
            {
                Directory.CreateDirectory(Path.Combine(root, name));
                foreach (var f in Directory.GetFiles(tokenizer)) File.Copy(f, Path.Combine(root, name, Path.GetFileName(f)));
            }
        File.WriteAllText(Path.Combine(root, "model_index.json"), xl ? """
            {"_class_name": "StableDiffusionXLPipeline", "force_zeros_for_empty_prompt": true, "scheduler": ["diffusers", "EulerDiscreteScheduler"],
             "text_encoder": ["transformers", "CLIPTextModel"], "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
             "tokenizer": ["transformers", "CLIPTokenizer"], "tokenizer_2": ["transformers", "CLIPTokenizer"],
             "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}
            """ : """
            {"_class_name": "StableDiffusionPipeline", "scheduler": ["diffusers", "PNDMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
             "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}
            """);
        Component(root, "scheduler", xl ? StableDiffusionXL.SchedulerConfig : StableDiffusion15.SchedulerConfig, "scheduler_config.json");

        manual_seed(0);
        string dir = Component(root, "text_encoder", StableDiffusion15.TextEncoderConfig);
        using (var te = new ClipTextModel(ClipTextConfig.From(JsonConfig.Load(Path.Combine(dir, "config.json")))))
            SafetensorsWriter.SaveModule(Path.Combine(dir, "model.safetensors"), te, diskType);
        if (xl)
        {
            dir = Component(root, "text_encoder_2", StableDiffusionXL.TextEncoder2Config);
            using var te2 = new ClipTextModel(ClipTextConfig.From(JsonConfig.Load(Path.Combine(dir, "config.json"))));
            SafetensorsWriter.SaveModule(Path.Combine(dir, "model.safetensors"), te2, diskType);
        }

        dir = Component(root, "unet", xl ? StableDiffusionXL.UNetConfig : StableDiffusion15.UNetConfig);
        using (var unet = new UNet2DConditionModel(UNet2DConditionConfig.From(JsonConfig.Load(Path.Combine(dir, "config.json")))))
            SafetensorsWriter.SaveModule(Path.Combine(dir, "diffusion_pytorch_model.safetensors"), unet, diskType);

        dir = Component(root, "vae", xl ? StableDiffusionXL.VaeConfig : StableDiffusion15.VaeConfig);
        using (var vae = new AutoencoderKL(AutoencoderKLConfig.From(JsonConfig.Load(Path.Combine(dir, "config.json")))))
            SafetensorsWriter.SaveModule(Path.Combine(dir, "diffusion_pytorch_model.safetensors"), vae, diskType);
    }

    static string Component(string root, string name, string config, string file = "config.json")
    {
        string dir = Path.Combine(root, name);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, file), config);
        return dir;
    }
}
