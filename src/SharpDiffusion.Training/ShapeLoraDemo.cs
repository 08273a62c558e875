using SharpDiffusion.Adapters;
using SharpDiffusion.Imaging;
using SharpDiffusion.Pipelines;

namespace SharpDiffusion.Training;

/// <summary>How a set of judged pictures reads (0..1): <paramref name="Asked"/> the kind the prompt asks for (read against
/// the four trained shapes and the new one), <paramref name="NewShape"/> the new shape (for prompts of the new shape the two
/// agree; for prompts of trained shapes it counts false sightings), colour, position, and colour and position together;
/// <paramref name="AskedSmall"/>/<paramref name="AskedLarge"/> split <paramref name="Asked"/> by the size asked for.</summary>
public sealed record ShapeLoraRates(double Asked, double NewShape, double Color, double Position, double ColorAndPosition,
    double AskedSmall, double AskedLarge, int Pictures);

/// <summary>
/// The LoRA proof on the shipped sharp-shapes model: a shape it never saw (<see cref="DefaultShape"/>, an L: "a small red
/// ell on the left"). Writes a kohya picture folder of generated, captioned pictures of it (captions in the dataset's
/// grammar), and judges a model's pictures for prompts × seeds with <see cref="SceneJudge"/>, as the held-out evaluation
/// judges, the new shape's template added to the four it tells apart.
/// </summary>
public static class ShapeLoraDemo
{
    /// <summary>The demo's shape, chosen for what the model's VAE carries: through its 16×16 latent, small Ls (half-size
    /// 7–9 px) come back as Ls in every case tried, small crosses in 34% and small rings in 7% (both blur into discs), and
    /// large ones of all three in every case (<c>EllShapeTests</c> keeps the L's ceiling).</summary>
    public const ShapeKind DefaultShape = ShapeKind.Ell;

    /// <summary>The shapes the demo can teach: the ones the shipped model never saw.</summary>
    public static IReadOnlyList<ShapeKind> NewShapes { get; } = Enum.GetValues<ShapeKind>().Except(ShapeVocabulary.TrainedShapes).ToList();

    /// <summary>Refuses a shape the shipped model already knows, in one line.</summary>
    public static ShapeKind Check(ShapeKind shape) => NewShapes.Contains(shape) ? shape
        : throw new ArgumentException($"--shape {ShapeVocabulary.Word(shape)}: the shipped model already draws it; give one of {Choices}.");

    /// <summary>The new shape named by its caption word ("ell"); anything else is refused in one line.</summary>
    public static ShapeKind Parse(string word) =>
        Check(Enum.GetValues<ShapeKind>().Where(k => ShapeVocabulary.Word(k) == word.Trim().ToLowerInvariant()).Cast<ShapeKind?>().FirstOrDefault()
            ?? throw new ArgumentException($"--shape {word}: not a shape; give one of {Choices}."));

    static string Choices => string.Join(", ", NewShapes.Select(ShapeVocabulary.Word));

    /// <summary>Writes <paramref name="count"/> pictures of one <paramref name="shape"/> each into <c>dir/1_{word}/</c> with
    /// same-named captions ("a small red ell on the left, on a blue background", optional parts left out as often as the
    /// base dataset does).</summary>
    public static void WriteDataset(string dir, int count, ShapeKind shape = DefaultShape, int seed = 5)
    {
        if (count < 1) throw new ArgumentException($"The demo needs at least 1 picture; got {count}.");
        Check(shape);
        string word = ShapeVocabulary.Word(shape), concept = Path.Combine(dir, "1_" + word);
        Directory.CreateDirectory(concept);
        foreach (var (scene, i) in Scenes(shape, count, seed).Select((s, i) => (s, i)))
        {
            string name = $"{word}_{i:D3}";
            PngFile.Save(Path.Combine(concept, name + ".png"), ShapeVocabulary.ImageSize, ShapeVocabulary.ImageSize, ShapeRasterizer.Render(scene));
            File.WriteAllText(Path.Combine(concept, name + ".txt"), scene.Caption);
        }
    }

    /// <summary>The training scenes <see cref="WriteDataset"/> draws: one shape each, every position, both sizes, any colour
    /// on another colour, jittered as the base dataset is.</summary>
    public static IEnumerable<Scene> Scenes(ShapeKind shape, int count, int seed = 5)
    {
        var o = new ShapeDataset.Options();
        for (int i = 0; i < count; i++)
            yield return Draw(shape, new Random(ShapeDataset.Mix(seed, i)), o.PositionJitter, o.SaySize, o.SayPosition, o.SayBackground);
    }

    static Scene Draw(ShapeKind shape, Random rng, float jitter, double saySize, double sayPosition, double sayBackground)
    {
        var colors = ShapeVocabulary.Colors;
        var position = Enum.GetValues<ShapePosition>()[rng.Next(5)];
        var color = colors[rng.Next(colors.Count)];
        var size = rng.Next(2) == 0 ? ShapeSize.Small : ShapeSize.Large;
        var (rMin, rMax) = ShapeVocabulary.RadiusRange(size);
        float radius = rMin + (float)rng.NextDouble() * (rMax - rMin);
        var (ax, ay) = ShapeVocabulary.Anchor(position);
        var drawn = new SceneObject(shape, color, size, position,
            ax + (float)(rng.NextDouble() * 2 - 1) * jitter, ay + (float)(rng.NextDouble() * 2 - 1) * jitter, radius);
        var others = colors.Where(c => c != color).ToList();
        var background = others[rng.Next(others.Count)];
        string caption = ShapeVocabulary.ObjectPhrase(shape, color, rng.NextDouble() < saySize ? size : null,
            rng.NextDouble() < sayPosition ? position : null);
        if (rng.NextDouble() < sayBackground) caption += ShapeVocabulary.BackgroundPhrase(background);
        return new Scene([drawn], background, caption);
    }

    /// <summary>The judged prompts: fully stated prompts of <paramref name="shape"/> over every position and both sizes,
    /// colours and backgrounds drawn from a fixed seed other than the dataset's.</summary>
    public static IReadOnlyList<HeldOutPrompt> Prompts(ShapeKind shape = DefaultShape, int count = 12)
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
            string prompt = ShapeVocabulary.ObjectPhrase(shape, color, size, position) + ShapeVocabulary.BackgroundPhrase(background);
            prompts.Add(new HeldOutPrompt(prompt, new HeldOutCombination(color.Name, shape, position), size, background));
        }
        return prompts;
    }

    /// <summary>Generates every prompt at every seed (with <paramref name="loras"/> merged, or none) and judges the pictures,
    /// the templates being the four trained shapes and <paramref name="shape"/>. <paramref name="keep"/> gets each picture.</summary>
    public static ShapeLoraRates Judge(StableDiffusionPipeline pipe, ShapeKind shape, IReadOnlyList<HeldOutPrompt> prompts, IReadOnlyList<long> seeds,
        IReadOnlyList<LoraWeight> loras, int steps, double guidance, Action<string>? log = null, Action<HeldOutPrompt, long, byte[]>? keep = null)
    {
        var pictures = new List<(HeldOutPrompt Prompt, long Seed, byte[] Rgb)>();
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
                pictures.Add((prompts[i], seed, result.Images[i].Rgb));
                keep?.Invoke(prompts[i], seed, result.Images[i].Rgb);
            }
        }
        return Score(shape, pictures, log);
    }

    /// <summary>Reads each picture with <see cref="SceneJudge"/> (templates: the trained shapes and <paramref name="shape"/>)
    /// against what its prompt asks for.</summary>
    public static ShapeLoraRates Score(ShapeKind shape, IReadOnlyList<(HeldOutPrompt Prompt, long Seed, byte[] Rgb)> pictures, Action<string>? log = null)
    {
        IReadOnlyList<ShapeKind> kinds = [.. ShapeVocabulary.TrainedShapes, shape];
        int asked = 0, sighted = 0, color = 0, position = 0, both = 0, small = 0, smallAsked = 0;
        foreach (var (p, seed, rgb) in pictures)
        {
            var r = SceneJudge.Read(rgb, kinds: kinds);
            bool sh = r.Shape == p.Combination.Shape, c = r.Color?.Name == p.Combination.Color, pos = r.Position == p.Combination.Position;
            asked += sh ? 1 : 0; sighted += r.Shape == shape ? 1 : 0; color += c ? 1 : 0; position += pos ? 1 : 0; both += c && pos ? 1 : 0;
            if (p.Size == ShapeSize.Small) (small, smallAsked) = (small + 1, smallAsked + (sh ? 1 : 0));
            log?.Invoke($"seed {seed} {p.Prompt,-58} -> {r.Color?.Name ?? "-",-6} {r.Shape?.ToString() ?? "-",-8} {r.Position?.ToString() ?? "-",-6}{(sh && c && pos ? "" : "  MISS")}");
        }
        double n = pictures.Count, large = n - small;
        return new ShapeLoraRates(asked / n, sighted / n, color / n, position / n, both / n,
            small == 0 ? double.NaN : smallAsked / (double)small, large == 0 ? double.NaN : (asked - smallAsked) / large, pictures.Count);
    }
}
