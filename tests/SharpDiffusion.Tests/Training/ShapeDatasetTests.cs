using System.Text.RegularExpressions;
using SharpDiffusion.Training;
using Xunit.Abstractions;

namespace SharpDiffusion.Tests.Training;

public class ShapeDatasetTests(ITestOutputHelper output)
{
    static readonly ShapeDataset Dataset = new();

    [Fact]
    public void Same_seed_and_index_give_the_same_scene_and_pixels()
    {
        for (int i = 0; i < 50; i++)
        {
            var a = Dataset.Sample(3, i);
            var b = new ShapeDataset().Sample(3, i);
            Assert.Equal(a.Caption, b.Caption);
            Assert.Equal(ShapeRasterizer.Render(a), ShapeRasterizer.Render(b));
        }
        var captions3 = Dataset.Samples(3, 0, 50).Select(s => s.Caption).ToList();
        var captions4 = Dataset.Samples(4, 0, 50).Select(s => s.Caption).ToList();
        Assert.NotEqual(captions3, captions4);
    }

    // The grammar of the README, parsed independently of the generator.
    static readonly Regex ObjectPattern = new(
        @"^a (?:(?<size>small|large) )?(?<color>red|orange|yellow|green|blue|purple|white|black) (?<shape>circle|square|triangle|star)(?: (?<position>on the left|on the right|at the top|at the bottom|in the center))?$");

    [Fact]
    public void Captions_follow_the_grammar_and_agree_with_the_scene()
    {
        int sized = 0, placed = 0, backgrounds = 0, commas = 0, twoShapes = 0;
        foreach (var scene in Dataset.Samples(11, 0, 2000))
        {
            string caption = scene.Caption;
            var bg = Regex.Match(caption, @",? on a (\w+) background$");
            if (bg.Success)
            {
                if (bg.Value.StartsWith(',')) commas++;
                Assert.Equal(scene.Background.Name, bg.Groups[1].Value);
                caption = caption[..bg.Index];
                backgrounds++;
            }
            var parts = caption.Split(" and ");
            Assert.Equal(scene.Objects.Count, parts.Length);
            if (parts.Length == 2) twoShapes++;
            var positionsSaid = new List<bool>();
            for (int k = 0; k < parts.Length; k++)
            {
                var m = ObjectPattern.Match(parts[k]);
                Assert.True(m.Success, $"'{parts[k]}' does not follow the grammar (caption: {scene.Caption})");
                var o = scene.Objects[k];
                Assert.Equal(o.Color.Name, m.Groups["color"].Value);
                Assert.Equal(ShapeVocabulary.Word(o.Shape), m.Groups["shape"].Value);
                if (m.Groups["size"].Success) { Assert.Equal(ShapeVocabulary.Word(o.Size), m.Groups["size"].Value); sized++; }
                positionsSaid.Add(m.Groups["position"].Success);
                if (m.Groups["position"].Success) { Assert.Equal(ShapeVocabulary.Phrase(o.Position), m.Groups["position"].Value); placed++; }
                Assert.NotEqual(o.Color, scene.Background);
                // The drawn geometry matches the words: radius within the size's range, centre near the anchor.
                var (rMin, rMax) = ShapeVocabulary.RadiusRange(o.Size);
                Assert.InRange(o.Radius, rMin, rMax);
                var (ax, ay) = ShapeVocabulary.Anchor(o.Position);
                Assert.InRange(o.CenterX - ax, -3.0f, 3.0f);
                Assert.InRange(o.CenterY - ay, -3.0f, 3.0f);
            }
            Assert.True(positionsSaid.All(p => p) || positionsSaid.All(p => !p), $"two-shape captions state both positions or neither: {scene.Caption}");
        }
        output.WriteLine($"of 2000 captions: {sized} sizes, {placed} positions, {backgrounds} backgrounds stated ({commas} after a comma); {twoShapes} two-shape scenes");
        // Every optional part is both said and left out somewhere.
        Assert.InRange(backgrounds, 1, 1999);
        Assert.InRange(commas, 1, backgrounds - 1);
        Assert.InRange(twoShapes, 1, 1999);
    }

    [Fact]
    public void The_background_comma_changes_only_how_a_caption_is_written()
    {
        // The shipped model's latents were encoded from scenes drawn before the comma option existed. Restoring the comma,
        // the captions of the training stream (seed 2 = 2 × the default run seed) must be those that run wrote to its
        // captions.txt: the SHA-256 of its first 2000 lines, joined by "\n", as that file holds them.
        var restored = Dataset.Samples(2, 0, 2000).Select(s =>
            s.Caption.EndsWith(ShapeVocabulary.BackgroundPhrase(s.Background, comma: false)) && !s.Caption.EndsWith(ShapeVocabulary.BackgroundPhrase(s.Background))
                ? s.Caption[..^ShapeVocabulary.BackgroundPhrase(s.Background, comma: false).Length] + ShapeVocabulary.BackgroundPhrase(s.Background)
                : s.Caption).ToList();
        string hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(string.Join("\n", restored))));
        Assert.Equal("770762784d66b8c6eb76c37ec52d9aad85f894ffc8a6fd7c8a457a6616737896", hash);

        // And the option's value changes no scene.
        var commaOnly = new ShapeDataset(new ShapeDataset.Options { BackgroundWithoutComma = 0 });
        int differing = 0;
        for (int i = 0; i < 500; i++)
        {
            var a = commaOnly.Sample(5, i);
            var b = Dataset.Sample(5, i);
            Assert.Equal(a.Objects, b.Objects);
            Assert.Equal(a.Background, b.Background);
            if (a.Caption != b.Caption) differing++;
        }
        Assert.InRange(differing, 1, 499);
    }

    [Fact]
    public void Held_out_combinations_never_appear_in_training_scenes()
    {
        Assert.Equal(Dataset.Settings.HeldOutCount, Dataset.HeldOut.Distinct().Count());
        var held = Dataset.HeldOut.ToHashSet();
        var captions = new HashSet<string>();
        foreach (var scene in Dataset.Samples(2, 0, 5000))
        {
            foreach (var o in scene.Objects)
                Assert.DoesNotContain(new HeldOutCombination(o.Color.Name, o.Shape, o.Position), held);
            captions.Add(scene.Caption);
        }
        var prompts = Dataset.HeldOutPrompts();
        Assert.Equal(2 * held.Count, prompts.Count);
        foreach (var p in prompts)
            Assert.DoesNotContain(p.Prompt, captions);
    }

    [Fact]
    public void The_judge_reads_rendered_scenes_back()
    {
        var singles = Dataset.Samples(5, 0, 600).Where(s => s.Objects.Count == 1).ToList();
        int shapeRight = 0;
        foreach (var scene in singles)
        {
            var o = scene.Objects[0];
            var reading = SceneJudge.Read(ShapeRasterizer.Render(scene));
            Assert.Equal(scene.Background, reading.Background);
            Assert.Equal(o.Color, reading.Color);
            Assert.Equal(o.Position, reading.Position);
            Assert.Equal(o.Size, reading.Size);
            if (reading.Shape == o.Shape) shapeRight++;
        }
        double rate = shapeRight / (double)singles.Count;
        output.WriteLine($"shape read correctly in {shapeRight}/{singles.Count} rendered scenes ({rate:P1})");
        Assert.True(rate >= 0.95, $"the shape template match is right for only {rate:P1} of clean renders");
    }
}
