using System.Text.Json;
using System.Text.Json.Nodes;
using SharpDiffusion.Loading;
using SharpDiffusion.Models.Clip;
using SharpDiffusion.Models.UNet;
using SharpDiffusion.Models.Vae;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpDiffusion.Training;

/// <summary>Writes a trained model as a standard diffusers folder with fp16 weights.</summary>
public static class ShapesModelFolder
{
    static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };
    static readonly string[] TokenizerFiles = ["vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"];

    public static void Save(string dir, ShapesModelSpec spec, ClipTextModel textEncoder, UNet2DConditionModel unet, AutoencoderKL vae,
        double scalingFactor, string tokenizerDir, GenerationDefaults defaults)
    {
        foreach (var sub in new[] { "scheduler", "text_encoder", "tokenizer", "unet", "vae" })
            Directory.CreateDirectory(Path.Combine(dir, sub));

        var index = new JsonObject
        {
            ["_class_name"] = "StableDiffusionPipeline",
            ["_diffusers_version"] = "0.25.0",
            ["feature_extractor"] = new JsonArray(null, null),
            ["requires_safety_checker"] = false,
            ["safety_checker"] = new JsonArray(null, null),
            ["scheduler"] = new JsonArray("diffusers", "DDIMScheduler"),
            ["text_encoder"] = new JsonArray("transformers", "CLIPTextModel"),
            ["tokenizer"] = new JsonArray("transformers", "CLIPTokenizer"),
            ["unet"] = new JsonArray("diffusers", "UNet2DConditionModel"),
            ["vae"] = new JsonArray("diffusers", "AutoencoderKL"),
        };
        Write(Path.Combine(dir, "model_index.json"), index);
        Write(Path.Combine(dir, "scheduler", "scheduler_config.json"), ShapesModelSpec.SchedulerConfig());
        Write(Path.Combine(dir, "text_encoder", "config.json"), spec.TextEncoderConfig());
        Write(Path.Combine(dir, "unet", "config.json"), spec.UNetConfig());
        Write(Path.Combine(dir, "vae", "config.json"), spec.VaeConfig(scalingFactor));

        SaveHalf(Path.Combine(dir, "text_encoder", "model.safetensors"), textEncoder);
        SaveHalf(Path.Combine(dir, "unet", "diffusion_pytorch_model.safetensors"), unet);
        SaveHalf(Path.Combine(dir, "vae", "diffusion_pytorch_model.safetensors"), vae);

        if (Path.GetFullPath(tokenizerDir) != Path.GetFullPath(Path.Combine(dir, "tokenizer")))
            foreach (var f in TokenizerFiles)
                File.Copy(Path.Combine(tokenizerDir, f), Path.Combine(dir, "tokenizer", f), overwrite: true);
        TrainingCheckpoint.WriteAtomically(Path.Combine(dir, GenerationDefaults.FileName), defaults.ToJson());
    }

    static void Write(string path, JsonObject json) => TrainingCheckpoint.WriteAtomically(path, json.ToJsonString(Indented));

    static void SaveHalf(string path, nn.Module module) =>
        SafetensorsWriter.SaveModule(path, module, ScalarType.Float16, new Dictionary<string, string> { ["format"] = "pt" });
}
