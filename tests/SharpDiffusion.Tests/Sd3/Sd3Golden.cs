using System.Text.Json;
using SharpDiffusion.Loading;
using SharpDiffusion.Pipelines;

namespace SharpDiffusion.Tests.Sd3;

/// <summary>golden/v3/sd3: the pipeline cases of each tiny SD3 model, the call each records (its safetensors metadata
/// "info") and the pipelines that run them (loaded once per model; without T5 for the no_t5 cases).</summary>
static class Sd3Golden
{
    public static readonly string[] Models = ["tiny-sd3", "tiny-sd35"];

    public static IEnumerable<object[]> Cases() =>
        from model in Models
        from file in Directory.GetFiles(Golden.Path("v3", "sd3", model), "*.safetensors").Select(Path.GetFileName).Order(StringComparer.Ordinal)
        where file is not ("t5_encoder.safetensors" or "transformer.safetensors" or "vae16.safetensors")
        select new object[] { model, Path.GetFileNameWithoutExtension(file)! };

    public static string[] File(string model, string name) => ["v3", "sd3", model, name + ".safetensors"];

    /// <summary>The reference call's record: pipeline class, kwargs, generator, scheduler.</summary>
    public static JsonElement Info(string model, string name)
    {
        using var file = SafetensorsFile.Open(Golden.Path(File(model, name)));
        return JsonDocument.Parse(file.Metadata["info"]).RootElement.Clone();
    }

    /// <summary>The no_t5 cases ran with text_encoder_3=None.</summary>
    public static bool WithoutT5(string name) => name.StartsWith("no_t5_", StringComparison.Ordinal);

    static readonly Dictionary<(string, bool), StableDiffusionPipeline> Pipelines = new();
    static readonly List<TempDir> Folders = [];

    // The no-T5 copies live as long as the cached pipelines that read them: until the test process ends.
    static Sd3Golden() => AppDomain.CurrentDomain.ProcessExit += (_, _) => Folders.ForEach(f => f.Dispose());

    /// <summary>The model's pipeline; <paramref name="withoutT5"/> loads a copy of its folder whose model_index.json lists
    /// text_encoder_3 and tokenizer_3 as [null, null], as diffusers saves a pipeline made with text_encoder_3=None.</summary>
    public static StableDiffusionPipeline Pipeline(string model, bool withoutT5)
    {
        lock (Pipelines)
        {
            if (!Pipelines.TryGetValue((model, withoutT5), out var p))
                Pipelines[(model, withoutT5)] = p = StableDiffusionPipeline.FromPretrained(withoutT5 ? FolderWithoutT5(model) : Golden.Path("v3", "models", model));
            return p;
        }
    }

    public static string FolderWithoutT5(string model)
    {
        var dir = new TempDir();
        Folders.Add(dir);
        string source = Golden.Path("v3", "models", model);
        foreach (var component in Directory.GetDirectories(source).Select(Path.GetFileName))
            if (component is not ("text_encoder_3" or "tokenizer_3"))
                Directory.CreateSymbolicLink(Path.Combine(dir.Path, component!), Path.Combine(source, component!));
        var index = System.Text.Json.Nodes.JsonNode.Parse(System.IO.File.ReadAllText(Path.Combine(source, "model_index.json")))!.AsObject();
        index["text_encoder_3"] = new System.Text.Json.Nodes.JsonArray(null, null);
        index["tokenizer_3"] = new System.Text.Json.Nodes.JsonArray(null, null);
        System.IO.File.WriteAllText(Path.Combine(dir.Path, "model_index.json"), index.ToJsonString());
        return dir.Path;
    }

    /// <summary>The pipeline call the reference made (the model's own scheduler: the cases pass none).</summary>
    public static GenerationOptions Options(JsonElement info) => GoldenManifest.Call(info) with
    {
        Strength = info.GetProperty("kwargs").TryGetProperty("strength", out var s) ? s.GetDouble() : null,
    };
}
