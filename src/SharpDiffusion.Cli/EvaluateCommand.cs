using SharpDiffusion.Loading;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Training;

namespace SharpDiffusion.Cli;

/// <summary>`evaluate`: held-out match rates of a shapes model, with its default guidance and without guidance.</summary>
public static class EvaluateCommand
{
    public static readonly OptionSpec[] Options =
    [
        new("model", OptionKind.Text, "the model folder (default: the shipped sharp-shapes model)", "DIR"),
        new("steps", OptionKind.Integer, "sampling steps (default: the model's generation_defaults.json)", "N"),
        new("guidance", OptionKind.Number, "guidance scale (default: the model's generation_defaults.json)", "X"),
        new("seed", OptionKind.Long, "seed of the batch (default: 1234)", "N"),
        new("verbose", OptionKind.Flag, "print every prompt with what was read back from its picture"),
        new("threads", OptionKind.Integer, "CPU threads for libtorch (default: all cores)", "N"),
        new("deep-cache", OptionKind.Integer, "DeepCache interval, as generate's --deep-cache (default: 1 = off)", "N"),
    ];

    public static int Run(CommandLine cl)
    {
        string model = cl.String("model") ?? DefaultModel.Locate() ?? throw new UsageException("--model DIR is required (no shipped model found).");
        var defaults = GenerationDefaults.Load(model);
        int steps = cl.Int("steps") ?? defaults?.NumInferenceSteps ?? 25;
        double guidance = cl.Double("guidance") ?? defaults?.GuidanceScale ?? 2;
        long seed = cl.Long("seed") ?? 1234;
        bool verbose = cl.Flag("verbose");
        int deepCache = cl.Int("deep-cache") ?? 1;
        if (deepCache is < 1 or > GenerationOptions.MaxDeepCacheInterval)
            throw new UsageException($"--deep-cache must be 1 (off) to {GenerationOptions.MaxDeepCacheInterval}; got {deepCache}.");
        int threads = cl.Int("threads") ?? Environment.ProcessorCount;
        threads = Threads.Check(threads);
        TorchRuntime.Initialize(threads);

        using var pipe = StableDiffusionPipeline.FromPretrained(model);
        var prompts = new ShapeDataset().HeldOutPrompts();
        Console.WriteLine($"{prompts.Count} held-out prompts, {steps} steps, seed {seed}{(deepCache > 1 ? $", DeepCache every {deepCache} steps" : "")}:");
        Console.WriteLine("| guidance | colour | position | size | shape | background | all but shape |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        foreach (double g in new[] { guidance, 1.0 })
        {
            var r = HeldOutEvaluation.Evaluate(pipe, prompts, g, steps, seed, verbose ? Console.WriteLine : null, deepCache);
            Console.WriteLine($"| {g} | {r.Color:P0} | {r.Position:P0} | {r.Size:P0} | {r.Shape:P0} | {r.Background:P0} | {r.AllButShape:P0} |");
        }
        return 0;
    }
}
