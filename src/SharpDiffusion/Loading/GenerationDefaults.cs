using System.Text.Json;
using System.Text.Json.Nodes;

namespace SharpDiffusion.Loading;

/// <summary>The sampling settings a model recommends, kept in its folder as generation_defaults.json
/// (not a diffusers file; diffusers ignores it).</summary>
public sealed record GenerationDefaults
{
    public int NumInferenceSteps { get; init; } = 25;
    public double GuidanceScale { get; init; } = 4.0;

    public const string FileName = "generation_defaults.json";

    /// <summary>The model folder's recommendations; null when it has no generation_defaults.json.</summary>
    public static GenerationDefaults? Load(string modelDir)
    {
        string path = Path.Combine(modelDir, FileName);
        if (!File.Exists(path)) return null;
        JsonObject node;
        try
        {
            node = JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                ?? throw new InvalidDataException($"{path} is not a JSON object");
        }
        catch (JsonException e) { throw new InvalidDataException($"{path} is not valid JSON: {e.Message}", e); }
        var d = new GenerationDefaults();
        return new GenerationDefaults
        {
            NumInferenceSteps = node["num_inference_steps"]?.GetValue<int>() ?? d.NumInferenceSteps,
            GuidanceScale = node["guidance_scale"]?.GetValue<double>() ?? d.GuidanceScale,
        };
    }

    /// <summary>The file's text, as <see cref="Load"/> reads it.</summary>
    public string ToJson() =>
        new JsonObject { ["num_inference_steps"] = NumInferenceSteps, ["guidance_scale"] = GuidanceScale }
            .ToJsonString(new JsonSerializerOptions { WriteIndented = true });
}
