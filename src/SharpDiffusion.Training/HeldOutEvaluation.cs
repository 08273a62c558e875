using SharpDiffusion.Pipelines;

namespace SharpDiffusion.Training;

/// <summary>How often the pictures match their prompts, attribute by attribute (0..1); <paramref name="AllButShape"/>: pictures
/// whose colour, position, size and background all match (everything the judge reads reliably; the kind is left out).</summary>
public sealed record MatchRates(double Color, double Position, double Size, double Shape, double Background, double AllButShape);

/// <summary>
/// Generates the held-out prompts (combinations no training caption contains) and reads every picture back with
/// <see cref="SceneJudge"/>: does the shape have the asked colour, position, size and kind, on the asked background?
/// </summary>
public static class HeldOutEvaluation
{
    public static MatchRates Evaluate(StableDiffusionPipeline pipe, IReadOnlyList<HeldOutPrompt> prompts, double guidance, int steps,
        long seed, Action<string>? log = null, int deepCacheInterval = 1)
    {
        using var result = pipe.Generate(new GenerationOptions
        {
            DeepCacheInterval = deepCacheInterval,
            Prompts = prompts.Select(p => p.Prompt).ToList(),
            NumInferenceSteps = steps,
            GuidanceScale = guidance,
            Seed = seed,
        });
        return Score(prompts, result.Images.Select(image => image.Rgb).ToList(), log);
    }

    /// <summary>Judges <paramref name="images"/> (64×64 RGB bytes, one a prompt, in order) against what their prompts ask for.</summary>
    public static MatchRates Score(IReadOnlyList<HeldOutPrompt> prompts, IReadOnlyList<byte[]> images, Action<string>? log = null)
    {
        if (images.Count != prompts.Count)
            throw new ArgumentException($"{images.Count} images for {prompts.Count} prompts", nameof(images));
        int color = 0, position = 0, size = 0, shape = 0, background = 0, allButShape = 0;
        for (int i = 0; i < prompts.Count; i++)
        {
            var p = prompts[i];
            var r = SceneJudge.Read(images[i]);
            bool c = r.Color?.Name == p.Combination.Color, pos = r.Position == p.Combination.Position,
                s = r.Size == p.Size, sh = r.Shape == p.Combination.Shape, bg = r.Background == p.Background;
            color += c ? 1 : 0; position += pos ? 1 : 0; size += s ? 1 : 0; shape += sh ? 1 : 0; background += bg ? 1 : 0;
            allButShape += c && pos && s && bg ? 1 : 0;
            log?.Invoke($"{p.Prompt,-62} -> {r.Color?.Name ?? "-",-6} {r.Shape?.ToString() ?? "-",-8} {r.Position?.ToString() ?? "-",-6} " +
                $"{r.Size?.ToString() ?? "-",-5} bg {r.Background.Name,-6} {(c && pos && s && bg ? "" : "  MISS")}");
        }
        double n = prompts.Count;
        return new MatchRates(color / n, position / n, size / n, shape / n, background / n, allButShape / n);
    }
}
