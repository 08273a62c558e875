using System.Text.Json;
using System.Text.RegularExpressions;
using SharpDiffusion.Pipelines;

namespace SharpDiffusion.Tests;

/// <summary>golden/manifest.json: how the reference made each file (kwargs, scheduler, seed).</summary>
public static partial class GoldenManifest
{
    // Python's json module writes bare NaN/Infinity; they become null so System.Text.Json accepts the file.
    static readonly Lazy<JsonDocument> Document = new(() =>
        JsonDocument.Parse(NonFinite().Replace(File.ReadAllText(Golden.Path("manifest.json")), "null")));

    public static JsonElement Info(string file) => Document.Value.RootElement.GetProperty("files").GetProperty(file).GetProperty("info");

    public static IEnumerable<string> Files(string prefix, string suffix) =>
        Document.Value.RootElement.GetProperty("files").EnumerateObject()
            .Select(p => p.Name).Where(n => n.StartsWith(prefix, StringComparison.Ordinal) && n.EndsWith(suffix, StringComparison.Ordinal))
            .OrderBy(n => n, StringComparer.Ordinal);

    /// <summary>The seed of "torch.manual_seed(N) ..." as the manifest records the generator.</summary>
    public static long Seed(JsonElement info)
    {
        var m = SeedPattern().Match(info.GetProperty("generator").GetString()!);
        Assert.True(m.Success, "manifest generator has no manual_seed");
        return long.Parse(m.Groups[1].Value);
    }

    /// <summary>The arguments every reference pipeline call has, as its kwargs and generator record them: prompt,
    /// negative_prompt, num_inference_steps, guidance_scale, width/height when given, and the seed. A case's own
    /// arguments (scheduler, strength, aesthetic scores) are added by its test class.</summary>
    public static GenerationOptions Call(JsonElement info)
    {
        var kwargs = info.GetProperty("kwargs");
        return new GenerationOptions
        {
            Prompts = Strings(kwargs.GetProperty("prompt")),
            NegativePrompts = kwargs.TryGetProperty("negative_prompt", out var n) ? Strings(n) : null,
            NumInferenceSteps = kwargs.GetProperty("num_inference_steps").GetInt32(),
            GuidanceScale = kwargs.GetProperty("guidance_scale").GetDouble(),
            Width = kwargs.TryGetProperty("width", out var w) ? w.GetInt32() : null,
            Height = kwargs.TryGetProperty("height", out var h) ? h.GetInt32() : null,
            Seed = Seed(info),
        };
    }

    /// <summary>A string or a list of strings.</summary>
    public static IReadOnlyList<string> Strings(JsonElement e) =>
        e.ValueKind == JsonValueKind.Array ? e.EnumerateArray().Select(x => x.GetString()!).ToList() : [e.GetString()!];

    [GeneratedRegex(@"(?<=[:\[,]\s*)-?(Infinity|NaN)(?=\s*[,\]}])")]
    private static partial Regex NonFinite();

    [GeneratedRegex(@"manual_seed\((\d+)\)")]
    private static partial Regex SeedPattern();
}
