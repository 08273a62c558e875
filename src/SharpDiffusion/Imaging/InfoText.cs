using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace SharpDiffusion.Imaging;

/// <summary>AUTOMATIC1111's "parameters" infotext: the prompt, "Negative prompt: …", then "Key: value" pairs in
/// its order (Steps, Sampler, CFG scale, Seed, Size, Model hash, Model, VAE hash, VAE, Variation seed, Variation seed
/// strength, Seed resize from, Denoising strength, Clip skip, Tiling, hires fix, Mask blur).</summary>
public static partial class InfoText
{
    public static string Format(string prompt, string negativePrompt, int steps, string sampler, double cfgScale, long seed,
        int width, int height, string model, double? denoisingStrength = null, int clipSkip = 1, int? maskBlur = null,
        string? modelHash = null, IReadOnlyList<(string Name, string Hash)>? loraHashes = null, int deepCacheInterval = 1,
        long? variationSeed = null, double variationStrength = 0, (int Width, int Height)? seedResizeFrom = null, bool tiling = false,
        IEnumerable<string>? extraPairs = null,
        string? vae = null, string? vaeHash = null, string? scheduleType = null, double? distilledCfgScale = null)
    {
        var lines = new List<string> { prompt };
        if (!string.IsNullOrEmpty(negativePrompt))
            lines.Add($"Negative prompt: {negativePrompt}");
        var inv = CultureInfo.InvariantCulture;
        var pairs = new List<string>
        {
            $"Steps: {steps}",
            $"Sampler: {sampler}",
            $"CFG scale: {cfgScale.ToString(inv)}",
            $"Seed: {seed}",
            $"Size: {width}x{height}",
        };
        // Forge: a guidance-distilled model's (Flux.1 dev's) embedded scale right after "CFG scale".
        if (distilledCfgScale is double distilled) pairs.Insert(pairs.IndexOf($"Seed: {seed}"), $"Distilled CFG Scale: {distilled.ToString(inv)}");
        // A1111 1.9+: "Schedule type" right after the sampler (create_infotext keeps that key's place), labelled as its sd_schedulers.
        if (!string.IsNullOrEmpty(scheduleType)) pairs.Insert(2, $"Schedule type: {scheduleType}");
        if (!string.IsNullOrEmpty(modelHash)) pairs.Add($"Model hash: {modelHash}");
        pairs.Add($"Model: {model}");
        // A1111 (processing.py): "VAE hash" (sha256[:10] of the file) then "VAE" (its file name), only for a separate VAE.
        if (!string.IsNullOrEmpty(vaeHash)) pairs.Add($"VAE hash: {vaeHash}");
        if (!string.IsNullOrEmpty(vae)) pairs.Add($"VAE: {vae}");
        if (variationSeed is long sub && variationStrength > 0)
        {
            pairs.Add($"Variation seed: {sub}");
            pairs.Add($"Variation seed strength: {variationStrength.ToString(inv)}");
        }
        if (seedResizeFrom is { Width: > 0, Height: > 0 } from) pairs.Add($"Seed resize from: {from.Width}x{from.Height}");
        if (denoisingStrength is double s) pairs.Add($"Denoising strength: {s.ToString(inv)}");
        if (clipSkip != 1) pairs.Add($"Clip skip: {clipSkip}");
        if (tiling) pairs.Add("Tiling: True");
        pairs.AddRange(extraPairs ?? []); // A1111's extra_generation_params (hires fix, ...), before the LoRA hashes
        if (maskBlur is int blur and > 0) pairs.Add($"Mask blur: {blur}");
        if (deepCacheInterval > 1) pairs.Add($"DeepCache: {deepCacheInterval}"); // the picture depends on it
        // A1111's Lora extension: "name: shorthash" joined by ", ", the name stripped of ':' and ','; quoted as the value has ':'.
        if (loraHashes is { Count: > 0 })
            pairs.Add($"Lora hashes: \"{string.Join(", ", loraHashes.Select(l => $"{l.Name.Replace(":", "").Replace(",", "")}: {l.Hash}"))}\"");
        lines.Add(string.Join(", ", pairs));
        return string.Join("\n", lines);
    }

    /// <summary>A value as A1111's quote(): as it is unless it holds ',', '\n' or ':' (or a quote), else JSON-quoted.</summary>
    public static string Quote(string text) =>
        text.IndexOfAny([',', '\n', ':', '"']) < 0 ? text : JsonSerializer.Serialize(text, new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });

    [GeneratedRegex(@"\s*(\w[\w \-/]+):\s*(""(?:\\.|[^\\""])+""|[^,]*)(?:,|$)")]
    private static partial Regex Pair();

    [GeneratedRegex(@"^(\d+)x(\d+)$")]
    private static partial Regex ImageSize();

    /// <summary>
    /// An infotext back into its fields, as AUTOMATIC1111's parse_generation_parameters: "Prompt", "Negative prompt", and
    /// each "Key: value" of the last line (quoted values unquoted); "Size" also as "Size-1" (width) and "Size-2" (height).
    /// </summary>
    public static Dictionary<string, string> Parse(string infotext)
    {
        var lines = infotext.Trim().Split('\n').Select(l => l.Trim()).ToList();
        var result = new Dictionary<string, string>();
        string last = lines.Count > 0 ? lines[^1] : "";
        var pairs = Pair().Matches(last);
        if (pairs.Count >= 3)
            lines.RemoveAt(lines.Count - 1);
        else
            pairs = Pair().Matches("");
        var prompt = new List<string>();
        var negative = new List<string>();
        bool inNegative = false;
        foreach (var line in lines)
        {
            if (line.StartsWith("Negative prompt:", StringComparison.Ordinal))
            {
                inNegative = true;
                negative.Add(line["Negative prompt:".Length..].Trim());
            }
            else (inNegative ? negative : prompt).Add(line);
        }
        result["Prompt"] = string.Join("\n", prompt);
        result["Negative prompt"] = string.Join("\n", negative);
        foreach (Match m in pairs)
        {
            string key = m.Groups[1].Value.Trim(), value = m.Groups[2].Value.Trim();
            if (value.Length >= 2 && value[0] == '"' && value[^1] == '"')
                try { value = JsonSerializer.Deserialize<string>(value) ?? value; } catch (JsonException) { }
            result[key] = value;
            if (ImageSize().Match(value) is { Success: true } size)
            {
                result[$"{key}-1"] = size.Groups[1].Value;
                result[$"{key}-2"] = size.Groups[2].Value;
            }
        }
        return result;
    }
}
