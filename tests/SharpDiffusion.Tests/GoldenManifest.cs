using System.Text.Json;
using System.Text.RegularExpressions;

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

    /// <summary>A string or a list of strings.</summary>
    public static IReadOnlyList<string> Strings(JsonElement e) =>
        e.ValueKind == JsonValueKind.Array ? e.EnumerateArray().Select(x => x.GetString()!).ToList() : [e.GetString()!];

    [GeneratedRegex(@"(?<=[:\[,]\s*)-?(Infinity|NaN)(?=\s*[,\]}])")]
    private static partial Regex NonFinite();

    [GeneratedRegex(@"manual_seed\((\d+)\)")]
    private static partial Regex SeedPattern();
}
