using System.Text.RegularExpressions;
using SharpDiffusion.Loading;

namespace SharpDiffusion.Models.Upscalers;

/// <summary>
/// Reads an upscaler file's keys into one layout and its architecture from the tensor shapes, as spandrel (the loader
/// ComfyUI uses) does. Accepted layouts: Real-ESRGAN/BasicSR (<c>conv_first</c>, <c>body.N.rdbK.convJ</c>, <c>conv_body</c>,
/// <c>conv_upN</c>, <c>conv_hr</c>, <c>conv_last</c>), BSRGAN's (<c>RRDB_trunk</c>, <c>trunk_conv</c>, <c>upconvN</c>,
/// <c>HRconv</c>), the old ESRGAN <c>model.N</c> sequence (4x-UltraSharp and most community models), and
/// SRVGGNetCompact's <c>body.N</c>; any of them under a <c>params_ema</c> or <c>params</c> dict (BasicSR's saves).
/// </summary>
public sealed class UpscalerWeights
{
    /// <summary>The stored key → our key; stored keys not in it are skipped (the other of params/params_ema).</summary>
    public IReadOnlyDictionary<string, string> Names { get; }
    public RRDBNetConfig? RRDBNet { get; }
    public SRVGGNetCompactConfig? Compact { get; }

    public int Scale => RRDBNet?.Scale ?? Compact!.Scale;
    public string Architecture => RRDBNet is not null ? "ESRGAN (RRDBNet)" : "Real-ESRGAN Compact (SRVGGNetCompact)";

    /// <summary>Key renames, as data: (stored pattern, our name). The old ESRGAN sequence's conv_body, upsampling and
    /// last convs depend on the block count and are added by <see cref="OldLayout"/>.</summary>
    static readonly (Regex Stored, string Ours)[] Renames =
    [
        (new(@"^model\.0\.(weight|bias)$"), "conv_first.$1"),
        (new(@"^model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$"), "body.$1.rdb$2.conv$3.$4"),
        (new(@"^RRDB_trunk\.(\d+)\.RDB(\d)\.conv(\d)\.(weight|bias)$"), "body.$1.rdb$2.conv$3.$4"),
        (new(@"^trunk_conv\.(weight|bias)$"), "conv_body.$1"),
        (new(@"^upconv(\d)\.(weight|bias)$"), "conv_up$1.$2"),
        (new(@"^HRconv\.(weight|bias)$"), "conv_hr.$1"),
    ];

    UpscalerWeights(Dictionary<string, string> names, RRDBNetConfig? rrdb, SRVGGNetCompactConfig? compact) =>
        (Names, RRDBNet, Compact) = (names, rrdb, compact);

    public static UpscalerWeights Read(ITensorFile file)
    {
        var headers = file.Headers;
        // BasicSR saves {'params_ema': ...} and/or {'params': ...}; spandrel prefers the EMA weights, as do we.
        string prefix = headers.Any(h => h.Name.StartsWith("params_ema.", StringComparison.Ordinal)) ? "params_ema."
            : headers.Any(h => h.Name.StartsWith("params.", StringComparison.Ordinal)) ? "params." : "";
        var stored = headers.Where(h => h.Name.StartsWith(prefix, StringComparison.Ordinal))
            .ToDictionary(h => h.Name, h => h.Name[prefix.Length..], StringComparer.Ordinal);

        var names = stored.ToDictionary(kv => kv.Key, kv => Rename(kv.Value), StringComparer.Ordinal);
        if (stored.Values.Contains("model.0.weight"))
            OldLayout(stored, names);
        var storedShapes = headers.ToDictionary(h => h.Name, h => h.Shape, StringComparer.Ordinal);
        var shapes = names.ToDictionary(kv => kv.Value, kv => storedShapes[kv.Key], StringComparer.Ordinal);

        if (shapes.ContainsKey("conv_first.weight") && shapes.ContainsKey("body.0.rdb1.conv1.weight")
            && shapes.ContainsKey("conv_last.weight") && shapes.ContainsKey("conv_hr.weight"))
        {
            int blocks = shapes.Keys.Select(k => Regex.Match(k, @"^body\.(\d+)\.")).Where(m => m.Success)
                .Select(m => int.Parse(m.Groups[1].Value)).Max() + 1;
            int ups = shapes.Keys.Count(k => Regex.IsMatch(k, @"^conv_up\d\.weight$"));
            var config = new RRDBNetConfig((int)shapes["conv_first.weight"][1], (int)shapes["conv_last.weight"][0],
                (int)shapes["conv_first.weight"][0], blocks, (int)shapes["body.0.rdb1.conv1.weight"][0], ups);
            config.Validate(file.Path);
            return new UpscalerWeights(names, config, null);
        }
        if (shapes.TryGetValue("body.0.weight", out var first) && first.Length == 4
            && shapes.TryGetValue("body.1.weight", out var slope) && slope.Length == 1)
        {
            int last = shapes.Keys.Select(k => Regex.Match(k, @"^body\.(\d+)\.weight$")).Where(m => m.Success)
                .Select(m => int.Parse(m.Groups[1].Value)).Max();
            long outputs = shapes[$"body.{last}.weight"][0];
            int scale = (int)Math.Round(Math.Sqrt(outputs / (double)first[1]));
            if (last % 2 != 0 || scale * scale * first[1] != outputs)
                throw new InvalidDataException($"{file.Path}: an SRVGGNetCompact whose last conv (body.{last}) gives {outputs} channels for {first[1]} input channels; expected an even index and input·scale² channels.");
            return new UpscalerWeights(names, null, new SRVGGNetCompactConfig((int)first[1], (int)first[0], (last - 2) / 2, scale));
        }
        var sample = string.Join(", ", headers.Take(4).Select(h => h.Name));
        throw new InvalidDataException($"{file.Path} is not an upscaler we know (ESRGAN/Real-ESRGAN RRDBNet or SRVGGNetCompact): its keys begin {sample}{(headers.Count > 4 ? ", ..." : "")}.");
    }

    static string Rename(string key)
    {
        foreach (var (pattern, ours) in Renames)
            if (pattern.IsMatch(key))
                return pattern.Replace(key, ours);
        return key;
    }

    /// <summary>The old sequence: model.1.sub.{nb} is conv_body; the upsampling convs sit at model.3, model.6, ...
    /// (3k: each after an Upsample and before a LeakyReLU); conv_hr at the last of them + 2, conv_last at + 4.</summary>
    static void OldLayout(Dictionary<string, string> stored, Dictionary<string, string> names)
    {
        int blocks = stored.Values.Select(k => Regex.Match(k, @"^model\.1\.sub\.(\d+)\.RDB")).Where(m => m.Success)
            .Select(m => int.Parse(m.Groups[1].Value)).DefaultIfEmpty(-1).Max() + 1;
        var top = stored.Values.Select(k => Regex.Match(k, @"^model\.(\d+)\.(weight|bias)$")).Where(m => m.Success)
            .Select(m => int.Parse(m.Groups[1].Value)).Where(i => i > 1).Distinct().Order().ToList();
        if (top.Count < 3) return;   // not a full ESRGAN sequence: Read refuses it by its keys
        var roles = new Dictionary<int, string> { [top[^1]] = "conv_last", [top[^2]] = "conv_hr" };
        foreach (int i in top.Take(top.Count - 2))
            roles[i] = i % 3 == 0 ? $"conv_up{i / 3}" : $"model.{i}";
        foreach (var (full, key) in stored)
        {
            var m = Regex.Match(key, @"^model\.(\d+)\.(weight|bias)$");
            if (m.Success && roles.TryGetValue(int.Parse(m.Groups[1].Value), out var role))
                names[full] = $"{role}.{m.Groups[2].Value}";
            else if (key == $"model.1.sub.{blocks}.weight" || key == $"model.1.sub.{blocks}.bias")
                names[full] = $"conv_body.{key[(key.LastIndexOf('.') + 1)..]}";
        }
    }
}
