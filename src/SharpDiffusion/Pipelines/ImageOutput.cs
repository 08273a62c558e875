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
        InfoText.Format(image.Prompt, image.NegativePrompt, options.NumInferenceSteps, result.SamplerName,
            result.InfoGuidance?.CfgScale ?? options.GuidanceScale,
            result.Seed, result.FirstPassSize?.Width ?? result.Width, result.FirstPassSize?.Height ?? result.Height, model,
            denoisingStrength: options.Hires?.Strength ?? (options.Task == GenerationTask.TextToImage ? null : options.EffectiveStrength),
            clipSkip: options.ClipSkip,
            maskBlur: options.Task == GenerationTask.Inpainting ? options.MaskBlur : null,
            modelHash: modelHash, loraHashes: result.Loras, deepCacheInterval: options.DeepCacheInterval, vae: vae?.Name, vaeHash: vae?.Hash,
            variationSeed: result.VariationSeed, variationStrength: options.VariationStrength,
            seedResizeFrom: (options.SeedResizeFromWidth, options.SeedResizeFromHeight), tiling: options.Tiling,
            extraPairs: HiresPairs(options.Hires).Concat(ControlNetPairs(options.ControlNets)).Concat(RefinerPairs(options.Refiner)), scheduleType: result.ScheduleType,
            distilledCfgScale: result.InfoGuidance?.Distilled);

    /// <summary>A1111's refiner entries: "Refiner: name [hash], Refiner switch at: 0.8".</summary>
    static IEnumerable<string> RefinerPairs(RefinerOptions? refiner) => refiner is null ? []
        : [$"Refiner: {InfoText.Quote(refiner.InfoName)}", $"Refiner switch at: {refiner.SwitchAt.ToString(System.Globalization.CultureInfo.InvariantCulture)}"];

    /// <summary>sd-webui-controlnet's entries (its Infotext.write_infotext): "ControlNet 0: \"Module: …\"" per unit,
    /// numbered from 0, quoted as A1111 quotes a value holding ',' or ':'.</summary>
    static IEnumerable<string> ControlNetPairs(IReadOnlyList<ControlNetUnit> units)
    {
        for (int i = 0; i < units.Count; i++)
            if (units[i].InfoText is { Length: > 0 } text)
                yield return $"ControlNet {i}: {InfoText.Quote(text)}";
    }

    /// <summary>One unit as sd-webui-controlnet serializes it (ControlNetUnit.serialize: its infotext fields in order,
    /// "Field Name: value" joined by ", ", floats as Python's str() writes them, enums by their value).</summary>
    /// <param name="resizeMode">"Just Resize", "Crop and Resize" or "Resize and Fill".</param>
    /// <param name="controlMode">"Balanced", "My prompt is more important" or "ControlNet is more important".</param>
    public static string ControlNetInfo(string module, string model, double weight, string resizeMode, int processorRes,
        double thresholdA, double thresholdB, double start, double end, bool pixelPerfect, string controlMode) =>
        $"Module: {module}, Model: {model}, Weight: {PyFloat(weight)}, Resize Mode: {resizeMode}, Processor Res: {processorRes}, " +
        $"Threshold A: {PyFloat(thresholdA)}, Threshold B: {PyFloat(thresholdB)}, Guidance Start: {PyFloat(start)}, " +
        $"Guidance End: {PyFloat(end)}, Pixel Perfect: {(pixelPerfect ? "True" : "False")}, Control Mode: {controlMode}";

    /// <summary>A float as Python's str(): the shortest round-trip digits, "1.0" rather than "1".</summary>
    static string PyFloat(double value)
    {
        string text = value.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
        return text.IndexOfAny(['.', 'E', 'e', 'N', 'I']) < 0 ? text + ".0" : text;
    }

    /// <summary>The upscaler as A1111's infotext names it: a model given by path (a library or CLI caller) by its file
    /// stem, as A1111 names the models of its ESRGAN folder; any other name as given.</summary>
    public static string UpscalerInfoName(string upscaler) =>
        Models.Upscalers.UpscalerModels.IsModelFileName(upscaler) ? Path.GetFileNameWithoutExtension(upscaler) : upscaler;

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
        yield return $"Hires upscaler: {UpscalerInfoName(hires.Upscaler)}";
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
