using SharpDiffusion.Cli;
using SharpDiffusion.Imaging;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Training;
using TorchSharp;
using Xunit.Abstractions;

namespace SharpDiffusion.Tests.Training;

/// <summary>
/// The LoRA proof's new shape, the ell (an L), and its judge: every expected value comes from the scene the rasterizer
/// was given (its colour, position, size and kind), never typed in. The judge must be a fair detector: it reads each drawn
/// L as an L, and adding the L's template changes no reading of a picture of the four trained shapes.
/// </summary>
public class EllShapeTests(ITestOutputHelper output)
{
    const ShapeKind Ell = ShapeKind.Ell;
    static readonly IReadOnlyList<ShapeKind> WithEll = [.. ShapeVocabulary.TrainedShapes, Ell];

    /// <summary>The demo's training scenes and the judged prompts' pictures, rasterized.</summary>
    static IEnumerable<Scene> EllScenes() =>
        ShapeLoraDemo.Scenes(Ell, 200).Concat(ShapeLoraDemo.Prompts(Ell).Select(p => p.ExpectedScene()));

    /// <summary>One-shape scenes of the base dataset and the held-out prompts' pictures (trained shapes only).</summary>
    static IEnumerable<Scene> TrainedShapeScenes() =>
        new ShapeDataset().Samples(17, 0, 600).Where(s => s.Objects.Count == 1)
            .Concat(new ShapeDataset().HeldOutPrompts().Select(p => p.ExpectedScene()));

    [Fact]
    public void A_rendered_ell_has_the_background_in_its_cut_quarter_and_its_colour_in_the_other_three()
    {
        foreach (var scene in ShapeLoraDemo.Scenes(Ell, 40))
        {
            var o = scene.Objects.Single();
            var rgb = ShapeRasterizer.Render(scene);
            // The pixel at the middle of each quarter of the L's square (half-size 0.85): at least 2.9 px from any edge of
            // the L at the smallest size, so no anti-aliasing reaches it. v points down: the top-right quarter is cut away.
            byte[] Quarter(int signU, int signV)
            {
                float d = 0.85f / 2 * o.Radius;
                int k = 3 * ((int)(o.CenterY + signV * d) * ShapeVocabulary.ImageSize + (int)(o.CenterX + signU * d));
                return rgb[k..(k + 3)];
            }
            byte[] Bytes(NamedColor c) => [c.R, c.G, c.B];
            Assert.Equal(Bytes(scene.Background), Quarter(+1, -1));
            Assert.Equal(Bytes(o.Color), Quarter(-1, -1));
            Assert.Equal(Bytes(o.Color), Quarter(-1, +1));
            Assert.Equal(Bytes(o.Color), Quarter(+1, +1));
        }
    }

    [Fact]
    public void The_judge_reads_every_rasterized_ell_as_an_ell_of_its_colour_position_and_size()
    {
        int n = 0;
        foreach (var scene in EllScenes())
        {
            var o = scene.Objects.Single();
            var r = SceneJudge.Read(ShapeRasterizer.Render(scene), kinds: WithEll);
            Assert.True(r.Shape == Ell, $"'{scene.Caption}' (half-size {o.Radius:F1}) read as {r.Shape}");
            Assert.Equal(o.Color, r.Color);
            Assert.Equal(o.Position, r.Position);
            Assert.Equal(o.Size, r.Size);
            Assert.Equal(scene.Background, r.Background);
            n++;
        }
        output.WriteLine($"{n} rasterized Ls, all read as Ls of their colour, position and size");
    }

    [Fact]
    public void Adding_the_ell_template_changes_no_reading_of_a_trained_shape()
    {
        int n = 0;
        foreach (var scene in TrainedShapeScenes())
        {
            var rgb = ShapeRasterizer.Render(scene);
            var withEll = SceneJudge.Read(rgb, kinds: WithEll);
            Assert.True(withEll.Shape != Ell, $"'{scene.Caption}' ({scene.Objects[0].Shape}) read as an L");
            Assert.Equal(SceneJudge.Read(rgb), withEll);
            n++;
        }
        output.WriteLine($"{n} rasterized pictures of the trained shapes: none read as an L, every reading as without the L's template");
    }

    /// <summary>The VAE is the ceiling of what a LoRA on the UNet can draw: Ls encoded and decoded by the shipped model's
    /// VAE must still read as Ls (the cut quarter survives the 16×16 latent, where a small cross's or ring's gaps do not),
    /// and its trained shapes must not turn into Ls.</summary>
    [Fact]
    public void The_shipped_vae_carries_the_ell_and_makes_no_ell_of_a_trained_shape()
    {
        string model = DefaultModel.Locate() ?? throw new InvalidOperationException("the shipped model was not found");
        using var pipe = StableDiffusionPipeline.FromPretrained(model);
        var ells = EllScenes().ToList();
        var trained = TrainedShapeScenes().ToList();
        var ellReadings = RoundTrip(pipe, ells).Select(rgb => SceneJudge.Read(rgb, kinds: WithEll)).ToList();
        var trainedReadings = RoundTrip(pipe, trained).Select(rgb => SceneJudge.Read(rgb, kinds: WithEll)).ToList();

        double RateOf(IEnumerable<(SceneReading R, Scene S)> pairs, Func<SceneReading, Scene, bool> hit, out string split)
        {
            var list = pairs.ToList();
            double Of(ShapeSize size) => list.Where(p => p.S.Objects[0].Size == size).Average(p => hit(p.R, p.S) ? 1.0 : 0.0);
            split = $"small {Of(ShapeSize.Small):P0}, large {Of(ShapeSize.Large):P0}";
            return list.Average(p => hit(p.R, p.S) ? 1.0 : 0.0);
        }
        double ellRead = RateOf(ellReadings.Zip(ells), (r, _) => r.Shape == Ell, out var ellSplit);
        double ellAll = RateOf(ellReadings.Zip(ells), (r, s) => r.Shape == Ell && r.Color == s.Objects[0].Color && r.Position == s.Objects[0].Position, out _);
        double falseElls = RateOf(trainedReadings.Zip(trained), (r, _) => r.Shape == Ell, out var falseSplit);
        output.WriteLine($"VAE round trip of {ells.Count} Ls: read as Ls {ellRead:P1} ({ellSplit}); L, colour and position {ellAll:P1}");
        output.WriteLine($"VAE round trip of {trained.Count} trained-shape pictures: read as Ls {falseElls:P1} ({falseSplit})");

        Assert.True(ellRead >= 0.9, $"Ls survive the VAE in {ellRead:P0} ({ellSplit}); the LoRA cannot draw more than the VAE decodes");
        Assert.True(falseElls <= 0.02, $"{falseElls:P1} of the VAE's trained shapes read as Ls: the judge would credit the LoRA with Ls the base draws");
    }

    static List<byte[]> RoundTrip(StableDiffusionPipeline pipe, IReadOnlyList<Scene> scenes)
    {
        int size = ShapeVocabulary.ImageSize, pixels = size * size * 3;
        byte[] decoded;
        using (torch.inference_mode())
        using (var scope = torch.NewDisposeScope())
        {
            var x = ShapesTrainer.ToImageTensor(scenes, size);                            // [N, 3, 64, 64]
            using var posterior = pipe.Vae.Encode(x);
            var image = pipe.DecodeLatents(posterior.Mean * pipe.Vae.Config.ScalingFactor);
            decoded = ImageTensors.ToUInt8(image).data<byte>().ToArray();               // [N, 64, 64, 3]
        }
        return Enumerable.Range(0, scenes.Count).Select(i => decoded[(i * pixels)..((i + 1) * pixels)]).ToList();
    }

    [Fact]
    public void The_demo_writes_captioned_ell_pictures_in_kohya_layout()
    {
        using var dir = new TempDir();
        ShapeLoraDemo.WriteDataset(dir.Path, 5);
        var scenes = ShapeLoraDemo.Scenes(Ell, 5).ToList();
        for (int i = 0; i < scenes.Count; i++)
        {
            string stem = Path.Combine(dir.Path, "1_ell", $"ell_{i:D3}");
            Assert.Equal(scenes[i].Caption, File.ReadAllText(stem + ".txt"));
            Assert.Contains(" ell", scenes[i].Caption);
            Assert.Equal(ShapeRasterizer.Render(scenes[i]), PngFile.Decode(stem + ".png").Rgb);
        }
        Assert.Equal(5, Directory.GetFiles(Path.Combine(dir.Path, "1_ell"), "*.png").Length);
    }

    [Fact]
    public void The_demo_teaches_only_shapes_the_shipped_model_never_saw()
    {
        Assert.Equal(Ell, ShapeLoraDemo.Parse("ell"));
        Assert.Equal(ShapeKind.Cross, ShapeLoraDemo.Parse("Cross"));
        foreach (var known in ShapeVocabulary.TrainedShapes)
        {
            var e = Assert.Throws<ArgumentException>(() => ShapeLoraDemo.Parse(ShapeVocabulary.Word(known)));
            Assert.DoesNotContain('\n', e.Message);
            Assert.Contains("ell", e.Message);
        }
        Assert.Throws<ArgumentException>(() => ShapeLoraDemo.Parse("hexagon"));
        Assert.Throws<ArgumentException>(() => ShapeLoraDemo.WriteDataset(Path.GetTempPath(), 1, ShapeKind.Circle));
        Assert.All(ShapeLoraDemo.Prompts(), p => Assert.StartsWith("a ", p.Prompt));
        Assert.All(ShapeLoraDemo.Prompts(), p => Assert.Equal(Ell, p.Combination.Shape));
    }
}
