using SharpDiffusion.Imaging;

namespace SharpDiffusion.Pipelines;

/// <summary>The files a call writes: one PNG per image with AUTOMATIC1111's "parameters" infotext, each written
/// atomically; FILE.png for one image, FILE-0.png, FILE-1.png, … in pipeline order for several.</summary>
public static class ImageOutput
{
    /// <summary>The infotext of one image of a call.</summary>
    /// <param name="modelHash">A1111's short hash of a single-file checkpoint (<see cref="StableDiffusionPipeline.ModelHash"/>).</param>
    /// <param name="vae">A separate VAE's file name and hash (<see cref="VaeCodec.UseVae"/>), written as A1111 does.</param>
    public static string InfoTextFor(GenerationOptions options, GenerationResult result, GeneratedImage image, string model, string? modelHash = null,
        (string Name, string Hash)? vae = null) =>
        InfoText.Format(image.Prompt, image.NegativePrompt, options.NumInferenceSteps, result.SamplerName, options.GuidanceScale,
            result.Seed, result.FirstPassSize?.Width ?? result.Width, result.FirstPassSize?.Height ?? result.Height, model,
            denoisingStrength: options.Hires?.Strength ?? (options.Task == GenerationTask.TextToImage ? null : options.EffectiveStrength),
            clipSkip: options.ClipSkip,
            maskBlur: options.Task == GenerationTask.Inpainting ? options.MaskBlur : null,
            modelHash: modelHash, loraHashes: result.Loras, deepCacheInterval: options.DeepCacheInterval, vae: vae?.Name, vaeHash: vae?.Hash,
            variationSeed: result.VariationSeed, variationStrength: options.VariationStrength,
            seedResizeFrom: (options.SeedResizeFromWidth, options.SeedResizeFromHeight), tiling: options.Tiling,
            extraPairs: HiresPairs(options.Hires));

    /// <summary>A1111's hires-fix entries: Hires prompt/negative prompt (when they differ), upscale or resize, steps, upscaler,
    /// sampler and CFG (when given).</summary>
    static IEnumerable<string> HiresPairs(HiresFixOptions? hires)
    {
        if (hires is null) yield break;
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        if (hires.Prompt is { Length: > 0 } p) yield return $"Hires prompt: {InfoText.Quote(p)}";
        if (hires.NegativePrompt is { } n) yield return $"Hires negative prompt: {InfoText.Quote(n)}";
        if (hires.ResizeWidth == 0 && hires.ResizeHeight == 0) yield return $"Hires upscale: {hires.Scale.ToString(inv)}";
        else yield return $"Hires resize: {hires.ResizeWidth}x{hires.ResizeHeight}";
        if (hires.Steps > 0) yield return $"Hires steps: {hires.Steps}";
        yield return $"Hires upscaler: {hires.Upscaler}";
        if (hires.Scheduler is { } sampler) yield return $"Hires sampler: {sampler}";
        if (hires.GuidanceScale is double g) yield return $"Hires CFG Scale: {g.ToString(inv)}";
    }

    /// <summary>Checks before any work that <paramref name="output"/> names a .png that can be written (for
    /// <paramref name="count"/> images, every numbered file).</summary>
    public static void CheckPath(string output, int count = 1)
    {
        if (Directory.Exists(output))
            AtomicFiles.CheckWritable(output); // says it is a folder
        if (!output.EndsWith(".png", StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"The output must name a .png file; got '{AtomicFiles.Printable(output)}'.");
        foreach (var path in Paths(output, count))
            AtomicFiles.CheckWritable(path);
    }

    /// <summary>FILE.png for one image; FILE-0.png, FILE-1.png, … in pipeline order for several.</summary>
    public static IReadOnlyList<string> Paths(string output, int count)
    {
        if (count == 1) return [output];
        string stem = output[..^4];
        return Enumerable.Range(0, count).Select(i => $"{stem}-{i}.png").ToList();
    }

    /// <summary>Writes every image of <paramref name="result"/>, all or none; returns the paths, in pipeline order.</summary>
    public static IReadOnlyList<string> Save(string output, GenerationOptions options, GenerationResult result, string model, string? modelHash = null,
        (string Name, string Hash)? vae = null)
    {
        var paths = Paths(output, result.Images.Count);
        AtomicFiles.WriteAll(result.Images.Select((image, i) => (paths[i], PngFile.Encode(image.Width, image.Height, image.Rgb,
            new Dictionary<string, string> { ["parameters"] = InfoTextFor(options, result, image, model, modelHash, vae) }))).ToList());
        return paths;
    }
}
