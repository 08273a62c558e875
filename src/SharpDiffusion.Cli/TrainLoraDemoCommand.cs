using System.Diagnostics;
using SharpDiffusion.Adapters;
using SharpDiffusion.Imaging;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Training;

namespace SharpDiffusion.Cli;

/// <summary>`train-lora-demo`: the LoRA proof on the shipped model. Writes captioned pictures of a shape it never saw (a
/// cross), trains a LoRA on them with train-lora's trainer, and judges cross prompts × seeds with and without it.</summary>
public static class TrainLoraDemoCommand
{
    public static readonly OptionSpec[] Options =
    [
        new("work", OptionKind.Text, "folder for the pictures, the LoRA, its checkpoint and loss curve (default: runs/cross-lora)", "DIR"),
        new("model", OptionKind.Text, "the base model (default: the shipped sharp-shapes model)", "DIR"),
        new("pictures", OptionKind.Integer, "training pictures to generate (default: 60)", "N"),
        new("steps", OptionKind.Integer, "training steps (default: 600)", "N"),
        new("batch", OptionKind.Integer, "pictures per step (default: 8)", "N"),
        new("lr", OptionKind.Number, "learning rate (default: 0.002)", "X"),
        new("rank", OptionKind.Integer, "LoRA rank (default: 8)", "N"),
        new("no-text-encoder", OptionKind.Flag, "train the UNet's LoRA only (default: the text encoder's too)"),
        new("seeds", OptionKind.Integer, "seeds per judged prompt; 12 prompts each (default: 2, 24 pictures)", "N"),
        new("examples", OptionKind.Text, "save a few judged pictures with the LoRA as PNGs here (default: none)", "DIR"),
        new("verbose", OptionKind.Flag, "print every judged picture"),
        new("threads", OptionKind.Integer, "CPU threads for libtorch (default: all cores)", "N"),
    ];

    public static int Run(CommandLine cl)
    {
        string work = cl.String("work") ?? Path.Combine("runs", "cross-lora");
        string model = cl.String("model") ?? DefaultModel.Locate() ?? throw new UsageException("--model DIR is required (no shipped model found).");
        int pictures = cl.Int("pictures") ?? 60, seeds = cl.Int("seeds") ?? 2;
        if (pictures < 1 || seeds < 1) throw new UsageException($"--pictures and --seeds must be at least 1; got {pictures} and {seeds}.");
        string images = Path.Combine(work, "images");
        var options = new LoraTrainingOptions
        {
            Model = model,
            Images = images,
            Output = Path.Combine(work, "cross.safetensors"),
            Steps = cl.Int("steps") ?? 600,
            Batch = cl.Int("batch") ?? 8,
            LearningRate = cl.Double("lr") ?? 2e-3,
            Rank = cl.Int("rank") ?? 8,
            Alpha = cl.Int("rank") ?? 8,
            TrainTextEncoder = !cl.Flag("no-text-encoder"),
            LossCsv = Path.Combine(work, "loss.csv"),
        };
        TorchRuntime.Initialize(Threads.Check(cl.Int("threads") ?? Environment.ProcessorCount));

        if (Directory.Exists(images)) Directory.Delete(images, recursive: true);
        if (File.Exists(options.LossCsv)) File.Delete(options.LossCsv);
        CrossLoraDemo.WriteDataset(images, pictures);
        Progress.Line($"Wrote {pictures} captioned cross pictures to {AtomicFiles.Printable(images)}");
        var clock = Stopwatch.StartNew();
        TrainLoraCommand.RunWithProgress(options);
        Progress.Line($"Trained {AtomicFiles.Printable(options.Output)} in {clock.Elapsed.TotalMinutes:F1} min ({options.Steps} steps, batch {options.Batch})");

        using var pipe = StableDiffusionPipeline.FromPretrained(model);
        var defaults = Loading.GenerationDefaults.Load(model);
        int steps = defaults?.NumInferenceSteps ?? 25;
        double guidance = defaults?.GuidanceScale ?? 4;
        var prompts = CrossLoraDemo.Prompts();
        var seedList = Enumerable.Range(0, seeds).Select(i => 1234L + i).ToList();
        using var lora = LoraFile.Load(options.Output);
        Action<string>? log = cl.Flag("verbose") ? Console.WriteLine : null;
        string? examples = cl.String("examples");
        int saved = 0;
        var with = CrossLoraDemo.Judge(pipe, prompts, seedList, [new LoraWeight(lora)], steps, guidance, log, (p, seed, rgb) =>
        {
            if (examples is null || saved >= 4 || seed != seedList[0]) return;
            Directory.CreateDirectory(examples);
            PngFile.Save(Path.Combine(examples, $"lora-cross-{++saved}.png"), ShapeVocabulary.ImageSize, ShapeVocabulary.ImageSize, rgb,
                new Dictionary<string, string> { ["parameters"] = $"{p.Prompt}\nSeed: {seed}, Lora: cross" });
        });
        var without = CrossLoraDemo.Judge(pipe, prompts, seedList, [], steps, guidance, log);
        Console.WriteLine($"{with.Pictures} pictures ({prompts.Count} cross prompts × {seeds} seeds), {steps} steps, guidance {guidance}:");
        Console.WriteLine("| LoRA | cross drawn | colour | position | colour and position |");
        Console.WriteLine("|---|---|---|---|---|");
        foreach (var (name, r) in new[] { ("with", with), ("without", without) })
            Console.WriteLine($"| {name} | {r.Shape:P0} | {r.Color:P0} | {r.Position:P0} | {r.ColorAndPosition:P0} |");
        return 0;
    }
}
