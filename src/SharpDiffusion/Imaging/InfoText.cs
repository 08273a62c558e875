using System.Globalization;

namespace SharpDiffusion.Imaging;

/// <summary>AUTOMATIC1111's "parameters" infotext: the prompt, "Negative prompt: …", then "Key: value" pairs.</summary>
public static class InfoText
{
    public static string Format(string prompt, string negativePrompt, int steps, string sampler, double cfgScale, long seed,
        int width, int height, string model)
    {
        var lines = new List<string> { prompt };
        if (!string.IsNullOrEmpty(negativePrompt))
            lines.Add($"Negative prompt: {negativePrompt}");
        var inv = CultureInfo.InvariantCulture;
        lines.Add(string.Join(", ",
            $"Steps: {steps}",
            $"Sampler: {sampler}",
            $"CFG scale: {cfgScale.ToString(inv)}",
            $"Seed: {seed}",
            $"Size: {width}x{height}",
            $"Model: {model}"));
        return string.Join("\n", lines);
    }
}
