using System.Text.Json;
using SharpDiffusion.Families.Flux;
using SharpDiffusion.Loading;
using SharpDiffusion.Models.Transformers;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Tests.Sd3;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Flux;

/// <summary>golden/v3/flux: the FluxPipeline cases of each tiny model (and the dev model's single-file cases), the call each
/// records (its metadata "info"), and the pipelines that run them, loaded once each: the folder, or the folder with its
/// transformer replaced by a single file.</summary>
static class FluxGolden
{
    public const string SingleFileDir = "single_file";
    public const string BflFile = "flux1-tiny-flux-dev.safetensors";
    public const string Fp8File = "flux1-tiny-flux-dev-fp8_e4m3fn.safetensors";
    public const string GgufFile = "flux1-tiny-flux-dev-Q8_0.gguf";

    /// <summary>(model, case): the folder cases, then the single-file ones as "single_file/&lt;case&gt;".</summary>
    public static IEnumerable<object[]> Cases() =>
        from model in new[] { "tiny-flux-dev", "tiny-flux-schnell" }
        from dir in new[] { "", SingleFileDir }
        let path = Golden.Path("v3", "flux", model, dir)
        where Directory.Exists(path)
        from file in Directory.GetFiles(path, "*.safetensors").Select(Path.GetFileName).Order(StringComparer.Ordinal)
        where !file!.StartsWith("flux1-", StringComparison.Ordinal) && file is not ("t5_encoder.safetensors" or "vae16.safetensors")
        select new object[] { model, Path.Combine(dir, Path.GetFileNameWithoutExtension(file)) };

    public static string[] File(string model, string name) => ["v3", "flux", model, name + ".safetensors"];

    public static string ModelDir(string model) => Golden.Path("v3", "models", model);

    public static string SingleFile(string name) => Golden.Path("v3", "flux", "tiny-flux-dev", SingleFileDir, name);

    /// <summary>The transformer file a case's weights came from (its info's transformer_weights), or null for the folder's.</summary>
    public static string? TransformerFileOf(string name) => Path.GetFileName(name) switch
    {
        var n when n.StartsWith("fp8_", StringComparison.Ordinal) => SingleFile(Fp8File),
        var n when n.StartsWith("gguf_q8_0_", StringComparison.Ordinal) => SingleFile(GgufFile),
        _ => null,
    };

    public static JsonElement Info(string model, string name)
    {
        using var file = SafetensorsFile.Open(Golden.Path(File(model, name)));
        return JsonDocument.Parse(file.Metadata["info"]).RootElement.Clone();
    }

    /// <summary>The case's tensors, its packed latents_steps [S, B, N, 64] unpacked to the loop's [S, B, 16, h, w] (the
    /// shape of rng_0), so the shared comparison of every step applies.</summary>
    public static Dictionary<string, Tensor> Load(string model, string name)
    {
        var golden = Golden.Load(File(model, name));
        var shape = golden["rng_0"].shape;
        var packed = golden["latents_steps"];
        golden["latents_steps"] = stack(Enumerable.Range(0, (int)packed.shape[0]).Select(i => FluxLatents.Unpack(packed[i], shape[2], shape[3])).ToArray());
        return golden;
    }

    /// <summary>A case's first transformer call, as diffusers made it.</summary>
    public static FluxTransformer2DInput FirstCall(Dictionary<string, Tensor> golden) => new(golden["denoiser_call0_hidden_states"],
        golden["denoiser_call0_timestep"], golden["denoiser_call0_encoder_hidden_states"], golden["denoiser_call0_pooled_projections"],
        golden["denoiser_call0_img_ids"], golden["denoiser_call0_txt_ids"], golden.GetValueOrDefault("denoiser_call0_guidance"));

    static readonly Dictionary<(string, string?), StableDiffusionPipeline> Pipelines = new();

    /// <summary>The model's pipeline, with <paramref name="transformerFile"/> in place of its transformer when given.</summary>
    public static StableDiffusionPipeline Pipeline(string model, string? transformerFile = null)
    {
        lock (Pipelines)
        {
            if (!Pipelines.TryGetValue((model, transformerFile), out var p))
                Pipelines[(model, transformerFile)] = p = StableDiffusionPipeline.FromPretrained(ModelDir(model), new LoadOptions { TransformerFile = transformerFile });
            return p;
        }
    }

    /// <summary>The pipeline call the reference made, with its max_sequence_length.</summary>
    public static GenerationOptions Options(JsonElement info) => Sd3Golden.Options(info) with
    {
        MaxSequenceLength = info.GetProperty("kwargs").GetProperty("max_sequence_length").GetInt32(),
    };
}
