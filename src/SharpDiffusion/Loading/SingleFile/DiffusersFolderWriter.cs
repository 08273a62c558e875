using System.Text.Json;
using System.Text.Json.Nodes;
using SharpDiffusion.Text;
using static TorchSharp.torch;

namespace SharpDiffusion.Loading.SingleFile;

/// <summary>
/// Writes a single-file checkpoint as a diffusers folder (model_index.json; unet/, vae/, text_encoder/ with config.json
/// and safetensors; tokenizer/; scheduler/), loadable by <c>StableDiffusionPipeline.FromPretrained</c> here and by
/// diffusers. Weights are written as loaded (float32 values bit for bit) or cast once to float16.
/// </summary>
public static class DiffusersFolderWriter
{
    static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>Converts <paramref name="checkpoint"/> into the folder <paramref name="output"/> (created; it must not
    /// hold files yet). <paramref name="dtype"/>: Float32 or Float16.</summary>
    public static void Convert(string checkpoint, string output, ScalarType dtype = ScalarType.Float32, SingleFileOptions? singleFile = null)
    {
        if (dtype is not (ScalarType.Float32 or ScalarType.Float16 or ScalarType.BFloat16))
            throw new ArgumentException($"Weights can be written as float32, float16 or bfloat16, not {dtype}.");
        if (File.Exists(output) || Directory.Exists(output) && Directory.EnumerateFileSystemEntries(output).Any())
            throw new IOException($"The output folder {output} already exists and is not empty: choose a new folder.");
        // Loaded in float32 on the CPU, contiguous: the stored values unchanged (float16 is cast once, at write).
        var load = new LoadOptions { DType = ScalarType.Float32, Device = "cpu", ChannelsLast = false };
        bool sd3;
        using (var file = TensorFiles.Open(checkpoint)) sd3 = Sd3Checkpoint.IsSd3(file);
        if (sd3)
        {
            Sd3DiffusersFolderWriter.Write(Sd3SingleFileLoader.Load(checkpoint, load, singleFile), output, dtype);
            return;
        }
        var c = SingleFileLoader.Load(checkpoint, load, singleFile);
        bool created = !Directory.Exists(output);
        try
        {
            Write(c, output, dtype);
        }
        catch
        {
            if (created && Directory.Exists(output)) Directory.Delete(output, recursive: true);
            throw;
        }
        finally
        {
            c.TextEncoder.Dispose(); c.Unet.Dispose(); c.Vae.Dispose(); c.TextEncoder2?.Dispose();
        }
    }

    static void Write(SingleFileComponents c, string output, ScalarType dtype)
    {
        var metadata = new Dictionary<string, string> { ["format"] = "pt" };
        ScalarType? cast = dtype == ScalarType.Float32 ? null : dtype;

        string unet = Directory.CreateDirectory(Path.Combine(output, "unet")).FullName;
        WriteJson(Path.Combine(unet, "config.json"), WithVersion(c.Checkpoint.UNetConfig));
        SafetensorsWriter.SaveModule(Path.Combine(unet, "diffusion_pytorch_model.safetensors"), c.Unet, cast, metadata);

        string vae = Directory.CreateDirectory(Path.Combine(output, "vae")).FullName;
        WriteJson(Path.Combine(vae, "config.json"), WithVersion(c.Checkpoint.VaeConfig));
        SafetensorsWriter.SaveModule(Path.Combine(vae, "diffusion_pytorch_model.safetensors"), c.Vae, cast, metadata);

        string dtypeName = dtype == ScalarType.Float32 ? "float32" : dtype == ScalarType.Float16 ? "float16" : "bfloat16";
        if (c.Checkpoint.IsRefiner)
        {
            WriteRefiner(c, output, dtypeName, cast, metadata);
            return;
        }
        WriteTextEncoder(Path.Combine(output, "text_encoder"), c.Checkpoint.TextEncoderConfig, c.TextEncoder, dtypeName, cast, metadata);
        // OpenCLIP's tokenizer pads with "!" (SD 2.x, SDXL's second encoder); OpenAI's CLIP with <|endoftext|>.
        WriteTokenizer(Path.Combine(output, "tokenizer"), c.Checkpoint.TextEncoderKind == LdmTextEncoder.OpenClip ? "!" : "<|endoftext|>");
        bool xl = c.TextEncoder2 is not null;
        if (xl)
        {
            var config2 = (JsonObject)c.Checkpoint.TextEncoder2Config!.DeepClone();
            config2["architectures"] = new JsonArray("CLIPTextModelWithProjection");
            WriteTextEncoder(Path.Combine(output, "text_encoder_2"), config2, c.TextEncoder2!, dtypeName, cast, metadata);
            WriteTokenizer(Path.Combine(output, "tokenizer_2"), "!");
        }

        string scheduler = Directory.CreateDirectory(Path.Combine(output, "scheduler")).FullName;
        WriteJson(Path.Combine(scheduler, "scheduler_config.json"), c.Checkpoint.SchedulerConfig);

        bool inpaint = c.Unet.Config.InChannels == 9;
        var index = new JsonObject
        {
            ["_class_name"] = xl ? (inpaint ? "StableDiffusionXLInpaintPipeline" : "StableDiffusionXLPipeline")
                : inpaint ? "StableDiffusionInpaintPipeline" : "StableDiffusionPipeline",
            ["_diffusers_version"] = "0.25.0",
            ["feature_extractor"] = new JsonArray(null, null),
            ["image_encoder"] = new JsonArray(null, null),
        };
        if (xl)
            index["force_zeros_for_empty_prompt"] = true; // SDXL base's own setting (an empty negative prompt → zeros)
        else
        {
            index["requires_safety_checker"] = false;
            index["safety_checker"] = new JsonArray(null, null);
        }
        index["scheduler"] = new JsonArray("diffusers", c.Checkpoint.SchedulerConfig["_class_name"]!.GetValue<string>());
        index["text_encoder"] = new JsonArray("transformers", "CLIPTextModel");
        if (xl) index["text_encoder_2"] = new JsonArray("transformers", "CLIPTextModelWithProjection");
        index["tokenizer"] = new JsonArray("transformers", "CLIPTokenizer");
        if (xl) index["tokenizer_2"] = new JsonArray("transformers", "CLIPTokenizer");
        index["unet"] = new JsonArray("diffusers", "UNet2DConditionModel");
        index["vae"] = new JsonArray("diffusers", "AutoencoderKL");
        WriteJson(Path.Combine(output, "model_index.json"), index);
    }

    /// <summary>An SDXL refiner as stabilityai/stable-diffusion-xl-refiner-1.0's folder: bigG as text_encoder_2 (no
    /// text_encoder), StableDiffusionXLImg2ImgPipeline with requires_aesthetics_score and force_zeros_for_empty_prompt false.</summary>
    static void WriteRefiner(SingleFileComponents c, string output, string dtypeName, ScalarType? cast, Dictionary<string, string> metadata)
    {
        WriteTextEncoder(Path.Combine(output, "text_encoder_2"), c.Checkpoint.TextEncoderConfig, c.TextEncoder, dtypeName, cast, metadata);
        WriteTokenizer(Path.Combine(output, "tokenizer_2"), "!");
        string scheduler = Directory.CreateDirectory(Path.Combine(output, "scheduler")).FullName;
        WriteJson(Path.Combine(scheduler, "scheduler_config.json"), c.Checkpoint.SchedulerConfig);
        WriteJson(Path.Combine(output, "model_index.json"), new JsonObject
        {
            ["_class_name"] = "StableDiffusionXLImg2ImgPipeline",
            ["_diffusers_version"] = "0.25.0",
            ["force_zeros_for_empty_prompt"] = false,
            ["requires_aesthetics_score"] = true,
            ["scheduler"] = new JsonArray("diffusers", c.Checkpoint.SchedulerConfig["_class_name"]!.GetValue<string>()),
            ["text_encoder"] = new JsonArray(null, null),
            ["text_encoder_2"] = new JsonArray("transformers", "CLIPTextModelWithProjection"),
            ["tokenizer"] = new JsonArray(null, null),
            ["tokenizer_2"] = new JsonArray("transformers", "CLIPTokenizer"),
            ["unet"] = new JsonArray("diffusers", "UNet2DConditionModel"),
            ["vae"] = new JsonArray("diffusers", "AutoencoderKL"),
        });
    }

    internal static void WriteTextEncoder(string dir, JsonObject config, TorchSharp.torch.nn.Module model, string dtypeName, ScalarType? cast,
        Dictionary<string, string> metadata)
    {
        Directory.CreateDirectory(dir);
        var copy = (JsonObject)config.DeepClone();
        copy["torch_dtype"] = dtypeName;
        WriteJson(Path.Combine(dir, "config.json"), copy);
        SafetensorsWriter.SaveModule(Path.Combine(dir, "model.safetensors"), model, cast, metadata);
    }

    /// <summary>The CLIP BPE files (bundled) and the special tokens; <paramref name="pad"/> is the padding token.</summary>
    internal static void WriteTokenizer(string dir, string pad)
    {
        Directory.CreateDirectory(dir);
        foreach (string name in (string[])["vocab.json", "merges.txt"])
        {
            using var source = ClipTokenizer.BundledFile(name);
            using var target = File.Create(Path.Combine(dir, name));
            source.CopyTo(target);
        }
        WriteJson(Path.Combine(dir, "special_tokens_map.json"), new JsonObject
        {
            ["bos_token"] = "<|startoftext|>", ["eos_token"] = "<|endoftext|>", ["unk_token"] = "<|endoftext|>", ["pad_token"] = pad,
        });
        WriteJson(Path.Combine(dir, "tokenizer_config.json"), new JsonObject
        {
            ["tokenizer_class"] = "CLIPTokenizer", ["model_max_length"] = 77, ["do_lower_case"] = true,
            ["bos_token"] = "<|startoftext|>", ["eos_token"] = "<|endoftext|>", ["unk_token"] = "<|endoftext|>", ["pad_token"] = pad,
        });
    }

    internal static JsonObject WithVersion(JsonObject config)
    {
        var copy = (JsonObject)config.DeepClone();
        copy["_diffusers_version"] = "0.25.0";
        return copy;
    }

    internal static void WriteJson(string path, JsonNode node) => File.WriteAllText(path, node.ToJsonString(Indented));
}
