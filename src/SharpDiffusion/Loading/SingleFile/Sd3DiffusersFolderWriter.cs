using System.Text.Json.Nodes;
using SharpDiffusion.Text;
using static TorchSharp.torch;

namespace SharpDiffusion.Loading.SingleFile;

/// <summary>
/// Writes an SD3/SD3.5 single file (and its text encoder files) as a diffusers StableDiffusion3Pipeline folder:
/// model_index.json; transformer/, vae/, text_encoder/, text_encoder_2/, text_encoder_3/ (when there is a T5) with
/// config.json and safetensors; tokenizer/ and tokenizer_2/ (the CLIP BPE files; bigG pads with "!"), tokenizer_3/ (the
/// T5 spiece.model used to load); scheduler/. Loading the folder gives the same components, so the same images.
/// </summary>
static class Sd3DiffusersFolderWriter
{
    /// <summary>Writes <paramref name="c"/> into <paramref name="output"/> (new or empty) and frees its modules; a failed
    /// write removes the folder it created.</summary>
    public static void Write(Sd3SingleFileComponents c, string output, ScalarType dtype)
    {
        bool created = !Directory.Exists(output);
        try
        {
            WriteFolder(c, output, dtype);
        }
        catch
        {
            if (created && Directory.Exists(output)) Directory.Delete(output, recursive: true);
            throw;
        }
        finally
        {
            foreach (var w in c.All) w.Module.Dispose();
        }
    }

    static void WriteFolder(Sd3SingleFileComponents c, string output, ScalarType dtype)
    {
        var metadata = new Dictionary<string, string> { ["format"] = "pt" };
        ScalarType? cast = dtype == ScalarType.Float32 ? null : dtype;
        string dtypeName = dtype == ScalarType.Float32 ? "float32" : dtype == ScalarType.Float16 ? "float16" : "bfloat16";
        var k = c.Checkpoint;

        foreach (var (folder, config, weights) in new[] { ("transformer", k.TransformerConfig, c.Transformer), ("vae", k.VaeConfig, c.Vae) })
        {
            string dir = Directory.CreateDirectory(Path.Combine(output, folder)).FullName;
            DiffusersFolderWriter.WriteJson(Path.Combine(dir, "config.json"), DiffusersFolderWriter.WithVersion(config));
            SafetensorsWriter.SaveModule(Path.Combine(dir, "diffusion_pytorch_model.safetensors"), weights.Module, cast, metadata);
        }

        var encoders = new Dictionary<Sd3TextEncoder, ComponentWeights?>
        {
            [Sd3TextEncoder.ClipL] = c.TextEncoder, [Sd3TextEncoder.ClipG] = c.TextEncoder2, [Sd3TextEncoder.T5] = c.TextEncoder3,
        };
        foreach (var (kind, weights) in encoders)
            if (weights is not null)
                DiffusersFolderWriter.WriteTextEncoder(Path.Combine(output, k.TextEncoders[kind].File.Folder), k.TextEncoders[kind].Config, weights.Module,
                    dtypeName, cast, metadata);

        WriteClipTokenizer(k.ClipTokenizerFolder, Path.Combine(output, "tokenizer"), "<|endoftext|>");
        WriteClipTokenizer(k.ClipTokenizer2Folder, Path.Combine(output, "tokenizer_2"), "!");
        bool t5 = c.TextEncoder3 is not null;
        if (t5)
        {
            string dir = Directory.CreateDirectory(Path.Combine(output, "tokenizer_3")).FullName;
            foreach (string name in (string[])[T5Tokenizer.SpieceFile, T5Tokenizer.ConfigFile, "special_tokens_map.json"])
                if (File.Exists(Path.Combine(k.T5TokenizerFolder!, name)))
                    File.Copy(Path.Combine(k.T5TokenizerFolder!, name), Path.Combine(dir, name));
        }

        string scheduler = Directory.CreateDirectory(Path.Combine(output, "scheduler")).FullName;
        DiffusersFolderWriter.WriteJson(Path.Combine(scheduler, "scheduler_config.json"), k.SchedulerConfig);

        var index = new JsonObject
        {
            ["_class_name"] = "StableDiffusion3Pipeline",
            ["_diffusers_version"] = "0.31.0",
            ["scheduler"] = new JsonArray("diffusers", "FlowMatchEulerDiscreteScheduler"),
            ["text_encoder"] = new JsonArray("transformers", "CLIPTextModelWithProjection"),
            ["text_encoder_2"] = new JsonArray("transformers", "CLIPTextModelWithProjection"),
            // diffusers' text_encoder_3=None: a folder without T5 runs on the CLIPs alone.
            ["text_encoder_3"] = t5 ? new JsonArray("transformers", "T5EncoderModel") : new JsonArray(null, null),
            ["tokenizer"] = new JsonArray("transformers", "CLIPTokenizer"),
            ["tokenizer_2"] = new JsonArray("transformers", "CLIPTokenizer"),
            ["tokenizer_3"] = t5 ? new JsonArray("transformers", "T5Tokenizer") : new JsonArray(null, null),
            ["transformer"] = new JsonArray("diffusers", "SD3Transformer2DModel"),
            ["vae"] = new JsonArray("diffusers", "AutoencoderKL"),
        };
        DiffusersFolderWriter.WriteJson(Path.Combine(output, "model_index.json"), index);
    }

    /// <summary>The config folder's tokenizer when one was given (copied as it is), else the bundled CLIP files.</summary>
    static void WriteClipTokenizer(string? source, string dir, string pad)
    {
        if (source is null)
        {
            DiffusersFolderWriter.WriteTokenizer(dir, pad);
            return;
        }
        Directory.CreateDirectory(dir);
        foreach (string file in Directory.GetFiles(source))
            File.Copy(file, Path.Combine(dir, Path.GetFileName(file)));
    }
}
