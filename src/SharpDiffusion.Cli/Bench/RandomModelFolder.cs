using SharpDiffusion.Configuration;
using SharpDiffusion.Loading;
using SharpDiffusion.Models;
using SharpDiffusion.Models.Clip;
using SharpDiffusion.Models.T5;
using SharpDiffusion.Models.Transformers;
using SharpDiffusion.Models.UNet;
using SharpDiffusion.Models.Vae;
using static TorchSharp.torch;

namespace SharpDiffusion.Cli.Bench;

/// <summary>A full-size SD 1.5, SDXL 1.0 or SD3/SD3.5 architecture with random weights, written as a diffusers folder so the
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

    /// <summary>The file whose presence marks a complete SD3 folder (written last) and names its architecture.</summary>
    public const string ArchitectureFile = "bench_architecture.txt";

    /// <summary>An SD3/SD3.5 folder of <paramref name="arch"/> with random weights in <paramref name="diskType"/>, written one
    /// tensor chunk at a time (<see cref="RandomSafetensors"/>): SD3.5 Medium is 16 GB in bfloat16, and never in memory.</summary>
    /// <param name="clipTokenizer">a CLIP tokenizer folder copied to tokenizer and tokenizer_2 (null: none).</param>
    /// <param name="t5Tokenizer">a T5 tokenizer folder (spiece.model) copied to tokenizer_3 (null: none; the folder then
    /// cannot generate, the transformer can still be timed).</param>
    public static void WriteSd3(string root, Sd3Architecture arch, ScalarType diskType, string? clipTokenizer, string? t5Tokenizer,
        Action<string>? log = null)
    {
        Directory.CreateDirectory(root);
        File.Delete(Path.Combine(root, ArchitectureFile)); // incomplete until rewritten at the end
        foreach (var (name, source) in new[] { ("tokenizer", clipTokenizer), ("tokenizer_2", clipTokenizer), ("tokenizer_3", t5Tokenizer) })
            if (source is not null) CopyFolder(source, Path.Combine(root, name));
        Component(root, "scheduler", arch.SchedulerConfig, "scheduler_config.json");

        void Write(string name, string config, string file, Func<string, nn.Module> build)
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            string dir = Component(root, name, config);
            long count = RandomSafetensors.Write(Path.Combine(dir, file), () => build(Path.Combine(dir, "config.json")), diskType);
            log?.Invoke($"  {name}: {count / 1e9:F2} B parameters in {clock.Elapsed.TotalSeconds:F0}s");
        }
        Write("text_encoder", arch.TextEncoderConfig, "model.safetensors", c => new ClipTextModel(ClipTextConfig.From(JsonConfig.Load(c))));
        Write("text_encoder_2", arch.TextEncoder2Config, "model.safetensors", c => new ClipTextModel(ClipTextConfig.From(JsonConfig.Load(c))));
        Write("text_encoder_3", arch.TextEncoder3Config, "model.safetensors", c => new T5EncoderModel(T5Config.From(JsonConfig.Load(c))));
        Write("transformer", arch.TransformerConfig, "diffusion_pytorch_model.safetensors",
            c => new SD3Transformer2DModel(SD3Transformer2DConfig.From(JsonConfig.Load(c))));
        Write("vae", arch.VaeConfig, "diffusion_pytorch_model.safetensors", c => new AutoencoderKL(AutoencoderKLConfig.From(JsonConfig.Load(c))));

        File.WriteAllText(Path.Combine(root, "model_index.json"), """
            {"_class_name": "StableDiffusion3Pipeline", "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
             "text_encoder": ["transformers", "CLIPTextModelWithProjection"], "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
             "text_encoder_3": ["transformers", "T5EncoderModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
             "tokenizer_2": ["transformers", "CLIPTokenizer"], "tokenizer_3": ["transformers", "T5TokenizerFast"],
             "transformer": ["diffusers", "SD3Transformer2DModel"], "vae": ["diffusers", "AutoencoderKL"]}
            """);
        File.WriteAllText(Path.Combine(root, ArchitectureFile), arch.Name);
    }

    /// <summary>The folder's text_encoder_3 rewritten with random weights in <paramref name="weights"/> (bf16, or fp8 as
    /// ComfyUI's t5xxl_fp8_e4m3fn: 2-D linear weights F8_E4M3), unless it already is (text_encoder_3/bench_weights.txt).</summary>
    public static void WriteT5(string root, BenchWeights weights, Action<string>? log = null)
    {
        string dir = Path.Combine(root, "text_encoder_3"), marker = Path.Combine(dir, "bench_weights.txt");
        string current = File.Exists(marker) ? File.ReadAllText(marker).Trim() : RandomCompactFile.Name(BenchWeights.Bf16);
        if (current == RandomCompactFile.Name(weights)) return;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        File.Delete(marker);
        List<(string Name, long[] Shape)> tensors;
        HashSet<string> compact;
        using (Layers.Placement(new Device("meta")))
        using (var t5 = new T5EncoderModel(T5Config.From(JsonConfig.Load(Path.Combine(dir, "config.json")))))
        {
            tensors = t5.named_parameters().Select(p => (p.name, p.parameter.shape)).DistinctBy(t => t.name).OrderBy(t => t.name, StringComparer.Ordinal).ToList();
            compact = t5.named_modules().Where(m => m.module is Linear { CompactCapable: true }).Select(m => m.name + ".weight").ToHashSet(StringComparer.Ordinal);
        }
        RandomCompactFile.Write(Path.Combine(dir, "model.safetensors"), tensors, compact.Contains, weights);
        File.WriteAllText(marker, RandomCompactFile.Name(weights));
        log?.Invoke($"  text_encoder_3 rewritten in {RandomCompactFile.Name(weights)} in {clock.Elapsed.TotalSeconds:F0}s");
    }

    /// <summary>The architecture name of a complete SD3 folder written by <see cref="WriteSd3"/>; null if there is none there.</summary>
    public static string? WrittenArchitecture(string root)
    {
        string marker = Path.Combine(root, ArchitectureFile);
        return File.Exists(marker) ? File.ReadAllText(marker).Trim() : null;
    }

    static void CopyFolder(string source, string target)
    {
        Directory.CreateDirectory(target);
        foreach (var f in Directory.GetFiles(source))
        {
            // bytes, not File.Copy: a read-only source (the golden data) would give read-only copies a rewrite cannot replace
            File.WriteAllBytes(Path.Combine(target, Path.GetFileName(f)), File.ReadAllBytes(f));
        }
    }

    static string Component(string root, string name, string config, string file = "config.json")
    {
        string dir = Path.Combine(root, name);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, file), config);
        return dir;
    }
}
