using System.Globalization;

namespace SharpDiffusion.Imaging;

/// <summary>AUTOMATIC1111's "parameters" infotext: the prompt, "Negative prompt: …", then "Key: value" pairs in
/// its order (Steps, Sampler, CFG scale, Seed, Size, Model hash, Model, Denoising strength, Clip skip, Mask blur).</summary>
public static class InfoText
{
    public static string Format(string prompt, string negativePrompt, int steps, string sampler, double cfgScale, long seed,
        int width, int height, string model, double? denoisingStrength = null, int clipSkip = 1, int? maskBlur = null,
        string? modelHash = null, IReadOnlyList<(string Name, string Hash)>? loraHashes = null)
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
        if (!string.IsNullOrEmpty(modelHash)) pairs.Add($"Model hash: {modelHash}");
        pairs.Add($"Model: {model}");
        if (denoisingStrength is double s) pairs.Add($"Denoising strength: {s.ToString(inv)}");
        if (clipSkip != 1) pairs.Add($"Clip skip: {clipSkip}");
        if (maskBlur is int blur and > 0) pairs.Add($"Mask blur: {blur}");
        // A1111's Lora extension: "name: shorthash" joined by ", ", the name stripped of ':' and ','; quoted as the value has ':'.
        if (loraHashes is { Count: > 0 })
            pairs.Add($"Lora hashes: \"{string.Join(", ", loraHashes.Select(l => $"{l.Name.Replace(":", "").Replace(",", "")}: {l.Hash}"))}\"");
        lines.Add(string.Join(", ", pairs));
        return string.Join("\n", lines);
    }
}
