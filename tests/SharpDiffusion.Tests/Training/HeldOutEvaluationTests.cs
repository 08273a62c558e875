using SharpDiffusion.Pipelines;
using SharpDiffusion.Training;
using Xunit.Abstractions;

namespace SharpDiffusion.Tests.Training;

/// <summary>Judges the pictures of the shipped model (models/sharp-shapes) for prompts it never saw in training.</summary>
// One collection: these tests set libtorch\'s global thread count, and the resume check compares floats across runs.
[Collection("Training")]
public class HeldOutEvaluationTests(ITestOutputHelper output)
{
    const long Seed = 1234;

    public static string ShippedModel { get; } = FindShippedModel();

    static string FindShippedModel()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "SharpDiffusion.slnx")))
                return Path.Combine(dir.FullName, "models", "sharp-shapes");
        throw new DirectoryNotFoundException("Repository root (SharpDiffusion.slnx) not found above " + AppContext.BaseDirectory);
    }

    sealed record Rates(double Color, double Position, double Size, double Shape, double Background);

    Rates Evaluate(StableDiffusionPipeline pipe, IReadOnlyList<HeldOutPrompt> prompts, double guidance, int steps, bool print)
    {
        using var result = pipe.Generate(new GenerationOptions
        {
            Prompts = prompts.Select(p => p.Prompt).ToList(),
            NumInferenceSteps = steps,
            GuidanceScale = guidance,
            Seed = Seed,
        });
        int color = 0, position = 0, size = 0, shape = 0, background = 0;
        for (int i = 0; i < prompts.Count; i++)
        {
            var p = prompts[i];
            var r = SceneJudge.Read(result.Images[i].Rgb);
            bool c = r.Color?.Name == p.Combination.Color, pos = r.Position == p.Combination.Position,
                s = r.Size == p.Size, sh = r.Shape == p.Combination.Shape, bg = r.Background == p.Background;
            color += c ? 1 : 0; position += pos ? 1 : 0; size += s ? 1 : 0; shape += sh ? 1 : 0; background += bg ? 1 : 0;
            if (print)
                output.WriteLine($"{p.Prompt,-62} -> {r.Color?.Name ?? "-",-6} {r.Shape?.ToString() ?? "-",-8} {r.Position?.ToString() ?? "-",-6} " +
                    $"{r.Size?.ToString() ?? "-",-5} bg {r.Background.Name,-6} {(c && pos ? "" : "  MISS")}");
        }
        double n = prompts.Count;
        return new Rates(color / n, position / n, size / n, shape / n, background / n);
    }

    [Fact]
    public void Shipped_model_draws_held_out_prompts_and_guidance_helps()
    {
        TorchRuntime.Initialize(Math.Min(2, Environment.ProcessorCount));
        var defaults = GenerationDefaults.Load(ShippedModel)
            ?? throw new FileNotFoundException($"{ShippedModel} has no {GenerationDefaults.FileName}");
        using var pipe = StableDiffusionPipeline.FromPretrained(ShippedModel);
        var prompts = new ShapeDataset().HeldOutPrompts();

        var guided = Evaluate(pipe, prompts, defaults.GuidanceScale, defaults.NumInferenceSteps, print: true);
        var unguided = Evaluate(pipe, prompts, 1.0, defaults.NumInferenceSteps, print: false);
        foreach (var (name, r) in new[] { ($"guidance {defaults.GuidanceScale}", guided), ("guidance 1", unguided) })
            output.WriteLine($"{name,-14} ({prompts.Count} held-out prompts, {defaults.NumInferenceSteps} steps, seed {Seed}): colour {r.Color:P0}, " +
                $"position {r.Position:P0}, size {r.Size:P0}, shape {r.Shape:P0}, background {r.Background:P0}");

        Assert.True(guided.Color >= 0.9, $"colour right in only {guided.Color:P0}");
        Assert.True(guided.Position >= 0.9, $"position right in only {guided.Position:P0}");
        Assert.True(guided.Color + guided.Position + guided.Shape > unguided.Color + unguided.Position + unguided.Shape,
            "classifier-free guidance does not improve the match");
    }
}
