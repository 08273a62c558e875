namespace SharpDiffusion.Training;

/// <summary>
/// The synthetic captioned dataset: scenes of one or two shapes, deterministic from a seed. A set of
/// (colour, shape, position) combinations is held out when the dataset is defined: no training scene draws a
/// shape of that colour and kind at that position (whether or not its caption says where), so prompts built from
/// them test generalisation to captions never trained on.
/// </summary>
public sealed class ShapeDataset
{
    /// <summary>Probabilities of the caption's optional parts and of two-shape scenes.</summary>
    public sealed record Options
    {
        public int HeldOutSeed { get; init; } = 2024;
        public int HeldOutCount { get; init; } = 20;
        public double TwoShapeProbability { get; init; } = 0.3;
        public double SayPosition { get; init; } = 0.75;
        public double SaySize { get; init; } = 0.75;
        public double SayBackground { get; init; } = 0.8;
        /// <summary>Of the captions that name the background, the share written "… on a blue background" rather than
        /// "…, on a blue background": people leave the comma out.</summary>
        public double BackgroundWithoutComma { get; init; } = 0.5;
        public float PositionJitter { get; init; } = 3f;
    }

    readonly HashSet<HeldOutCombination> _heldOut;

    public Options Settings { get; }
    public IReadOnlyList<HeldOutCombination> HeldOut { get; }

    public ShapeDataset(Options? options = null)
    {
        Settings = options ?? new Options();
        var all = (from c in ShapeVocabulary.Colors
                   from s in ShapeVocabulary.TrainedShapes
                   from p in Enum.GetValues<ShapePosition>()
                   select new HeldOutCombination(c.Name, s, p)).ToList();
        var rng = new Random(Settings.HeldOutSeed);
        HeldOut = all.OrderBy(_ => rng.Next()).Take(Settings.HeldOutCount).ToList();
        _heldOut = [.. HeldOut];
    }

    public bool IsHeldOut(SceneObject o) => _heldOut.Contains(new HeldOutCombination(o.Color.Name, o.Shape, o.Position));

    /// <summary>Scene number <paramref name="index"/> of the stream seeded by <paramref name="seed"/>: a pure function of both.</summary>
    public Scene Sample(int seed, long index)
    {
        var rng = new Random(Mix(seed, index));
        while (true)
        {
            var scene = Draw(rng);
            if (scene.Objects.Any(IsHeldOut)) continue;
            // Drawn after the scene is accepted, so the comma choice changes no scene, only how its caption is written.
            bool withoutComma = rng.NextDouble() < Settings.BackgroundWithoutComma;
            string withComma = ShapeVocabulary.BackgroundPhrase(scene.Background);
            return withoutComma && scene.Caption.EndsWith(withComma, StringComparison.Ordinal)
                ? scene with { Caption = scene.Caption[..^withComma.Length] + ShapeVocabulary.BackgroundPhrase(scene.Background, comma: false) }
                : scene;
        }
    }

    public IEnumerable<Scene> Samples(int seed, long start, int count)
    {
        for (long i = start; i < start + count; i++) yield return Sample(seed, i);
    }

    Scene Draw(Random rng)
    {
        var colors = ShapeVocabulary.Colors;
        bool two = rng.NextDouble() < Settings.TwoShapeProbability;
        ShapePosition[] positions;
        if (!two)
            positions = [Pick(rng, Enum.GetValues<ShapePosition>())];
        else
        {
            // Two shapes sit on opposite sides so they never overlap.
            positions = rng.Next(2) == 0 ? [ShapePosition.Left, ShapePosition.Right] : [ShapePosition.Top, ShapePosition.Bottom];
            if (rng.Next(2) == 0) Array.Reverse(positions);
        }
        var objects = new List<SceneObject>();
        foreach (var position in positions)
        {
            var shape = Pick(rng, ShapeVocabulary.TrainedShapes);
            var color = Pick(rng, colors);
            var size = rng.Next(2) == 0 ? ShapeSize.Small : ShapeSize.Large;
            var (rMin, rMax) = ShapeVocabulary.RadiusRange(size);
            float radius = rMin + (float)rng.NextDouble() * (rMax - rMin);
            var (ax, ay) = ShapeVocabulary.Anchor(position);
            float j = Settings.PositionJitter;
            objects.Add(new SceneObject(shape, color, size, position,
                ax + (float)(rng.NextDouble() * 2 - 1) * j, ay + (float)(rng.NextDouble() * 2 - 1) * j, radius));
        }
        var background = Pick(rng, colors.Where(c => objects.All(o => o.Color != c)).ToArray());

        bool sayPosition = rng.NextDouble() < Settings.SayPosition;
        var phrases = objects.Select(o => ShapeVocabulary.ObjectPhrase(o.Shape, o.Color,
            rng.NextDouble() < Settings.SaySize ? o.Size : null, sayPosition ? o.Position : null));
        string caption = string.Join(" and ", phrases);
        if (rng.NextDouble() < Settings.SayBackground) caption += ShapeVocabulary.BackgroundPhrase(background);
        return new Scene(objects, background, caption);
    }

    /// <summary>A fixed hash of (seed, index) into a Random seed (HashCode.Combine is randomised per process).</summary>
    public static int Mix(long seed, long index)
    {
        ulong z = (ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)index + 0x632BE59BD9B4E019UL; // splitmix64
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return (int)(z & 0x7FFFFFFF);
    }

    static T Pick<T>(Random rng, IReadOnlyList<T> items) => items[rng.Next(items.Count)];

    /// <summary>Evaluation prompts: each held-out combination at both sizes on a background chosen from
    /// <paramref name="seed"/>, fully stated ("a small red circle on the left, on a blue background").</summary>
    public IReadOnlyList<HeldOutPrompt> HeldOutPrompts(int seed = 7)
    {
        var rng = new Random(seed);
        var prompts = new List<HeldOutPrompt>();
        foreach (var combo in HeldOut)
        foreach (var size in Enum.GetValues<ShapeSize>())
        {
            var color = ShapeVocabulary.Color(combo.Color);
            var background = Pick(rng, ShapeVocabulary.Colors.Where(c => c != color).ToArray());
            string prompt = ShapeVocabulary.ObjectPhrase(combo.Shape, color, size, combo.Position) + ShapeVocabulary.BackgroundPhrase(background);
            prompts.Add(new HeldOutPrompt(prompt, combo, size, background));
        }
        return prompts;
    }
}
