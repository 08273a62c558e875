using SharpDiffusion.Adapters;
using SharpDiffusion.Imaging;
using SharpDiffusion.Pipelines;

namespace SharpDiffusion.Training;

/// <summary>How often the pictures of <see cref="CrossLoraDemo.Prompts"/> show what they ask for (0..1):
/// the kind (read against the four trained shapes and the cross), colour, position, and colour and position together.</summary>
public sealed record CrossRates(double Shape, double Color, double Position, double ColorAndPosition, int Pictures);

/// <summary>
/// The LoRA proof on the shipped sharp-shapes model: a shape it never saw, the <see cref="ShapeKind.Cross"/>. Writes a
/// kohya picture folder of generated, captioned crosses (captions in the dataset's grammar), and judges a model's
/// pictures for cross prompts × seeds with <see cref="SceneJudge"/>, as the held-out evaluation judges.
/// </summary>
public static class CrossLoraDemo
{
    /// <summary>Writes <paramref name="count"/> pictures of one cross each into <c>dir/1_cross/</c> with same-named captions
    /// ("a small red cross on the left, on a blue background", optional parts left out as often as the base dataset does).</summary>
    public static void WriteDataset(string dir, int count, int seed = 5)
    {
        if (count < 1) throw new ArgumentException($"The demo needs at least 1 picture; got {count}.");
        string concept = Path.Combine(dir, "1_cross");
        Directory.CreateDirectory(concept);
        var o = new ShapeDataset.Options();
        for (int i = 0; i < count; i++)
        {
            var rng = new Random(ShapeDataset.Mix(seed, i));
            var scene = Draw(rng, o.PositionJitter, o.SaySize, o.SayPosition, o.SayBackground);
            string name = $"cross_{i:D3}";
            PngFile.Save(Path.Combine(concept, name + ".png"), ShapeVocabulary.ImageSize, ShapeVocabulary.ImageSize, ShapeRasterizer.Render(scene));
            File.WriteAllText(Path.Combine(concept, name + ".txt"), scene.Caption);
        }
    }

    static Scene Draw(Random rng, float jitter, double saySize, double sayPosition, double sayBackground)
    {
        var colors = ShapeVocabulary.Colors;
        var position = Enum.GetValues<ShapePosition>()[rng.Next(5)];
        var color = colors[rng.Next(colors.Count)];
        var size = rng.Next(2) == 0 ? ShapeSize.Small : ShapeSize.Large;
        var (rMin, rMax) = ShapeVocabulary.RadiusRange(size);
        float radius = rMin + (float)rng.NextDouble() * (rMax - rMin);
        var (ax, ay) = ShapeVocabulary.Anchor(position);
        var cross = new SceneObject(ShapeKind.Cross, color, size, position,
            ax + (float)(rng.NextDouble() * 2 - 1) * jitter, ay + (float)(rng.NextDouble() * 2 - 1) * jitter, radius);
        var others = colors.Where(c => c != color).ToList();
        var background = others[rng.Next(others.Count)];
        string caption = ShapeVocabulary.ObjectPhrase(ShapeKind.Cross, color, rng.NextDouble() < saySize ? size : null,
            rng.NextDouble() < sayPosition ? position : null);
        if (rng.NextDouble() < sayBackground) caption += ShapeVocabulary.BackgroundPhrase(background);
        return new Scene([cross], background, caption);
    }

    /// <summary>The judged prompts: fully stated cross prompts over every position and both sizes, colours and backgrounds
    /// drawn from a fixed seed other than the dataset's.</summary>
    public static IReadOnlyList<HeldOutPrompt> Prompts(int count = 12)
    {
        var rng = new Random(31);
        var prompts = new List<HeldOutPrompt>();
        for (int i = 0; i < count; i++)
        {
            var position = Enum.GetValues<ShapePosition>()[i % 5];
            var size = i % 2 == 0 ? ShapeSize.Large : ShapeSize.Small;
            var color = ShapeVocabulary.Colors[rng.Next(ShapeVocabulary.Colors.Count)];
            var others = ShapeVocabulary.Colors.Where(c => c != color).ToList();
            var background = others[rng.Next(others.Count)];
            string prompt = ShapeVocabulary.ObjectPhrase(ShapeKind.Cross, color, size, position) + ShapeVocabulary.BackgroundPhrase(background);
            prompts.Add(new HeldOutPrompt(prompt, new HeldOutCombination(color.Name, ShapeKind.Cross, position), size, background));
        }
        return prompts;
    }

    /// <summary>Generates every prompt at every seed (with <paramref name="loras"/> merged, or none) and judges the pictures.
    /// <paramref name="keep"/> gets each picture with its prompt and seed.</summary>
    public static CrossRates Judge(StableDiffusionPipeline pipe, IReadOnlyList<HeldOutPrompt> prompts, IReadOnlyList<long> seeds,
        IReadOnlyList<LoraWeight> loras, int steps, double guidance, Action<string>? log = null, Action<HeldOutPrompt, long, byte[]>? keep = null)
    {
        IReadOnlyList<ShapeKind> kinds = [.. ShapeVocabulary.TrainedShapes, ShapeKind.Cross];
        int shape = 0, color = 0, position = 0, both = 0, n = 0;
        foreach (long seed in seeds)
        {
            using var result = pipe.Generate(new GenerationOptions
            {
                Prompts = prompts.Select(p => p.Prompt).ToList(),
                NumInferenceSteps = steps,
                GuidanceScale = guidance,
                Seed = seed,
                Loras = loras,
            });
            for (int i = 0; i < prompts.Count; i++)
            {
                var p = prompts[i];
                var rgb = result.Images[i].Rgb;
                var r = SceneJudge.Read(rgb, kinds: kinds);
                bool sh = r.Shape == ShapeKind.Cross, c = r.Color?.Name == p.Combination.Color, pos = r.Position == p.Combination.Position;
                (shape, color, position, both, n) = (shape + (sh ? 1 : 0), color + (c ? 1 : 0), position + (pos ? 1 : 0), both + (c && pos ? 1 : 0), n + 1);
                log?.Invoke($"seed {seed} {p.Prompt,-58} -> {r.Color?.Name ?? "-",-6} {r.Shape?.ToString() ?? "-",-8} {r.Position?.ToString() ?? "-",-6}{(sh && c && pos ? "" : "  MISS")}");
                keep?.Invoke(p, seed, rgb);
            }
        }
        return new CrossRates(shape / (double)n, color / (double)n, position / (double)n, both / (double)n, n);
    }
}
