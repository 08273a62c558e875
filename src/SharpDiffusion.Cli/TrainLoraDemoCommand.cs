using System.Diagnostics;
using SharpDiffusion.Adapters;
using SharpDiffusion.Imaging;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Training;

namespace SharpDiffusion.Cli;

/// <summary>`train-lora-demo`: the LoRA proof on the shipped model. Writes captioned pictures of a shape it never saw (an
/// L, "ell"), trains a LoRA on them with train-lora's trainer, and judges prompts of the shape × seeds with and without it,
/// and the held-out prompts of the four trained shapes with and without it (does the LoRA or the judge see Ls there?).</summary>
public static class TrainLoraDemoCommand
{
    public static readonly OptionSpec[] Options =
    [
        new("work", OptionKind.Text, "folder for the pictures, the LoRA, its checkpoint and loss curve (default: runs/SHAPE-lora)", "DIR"),
        new("model", OptionKind.Text, "the base model (default: the shipped sharp-shapes model)", "DIR"),
        new("shape", OptionKind.Text, "the new shape: ell (an L) or cross (default: ell)", "NAME"),
        new("pictures", OptionKind.Integer, "training pictures to generate (default: 60)", "N"),
        new("steps", OptionKind.Integer, "training steps (default: 400)", "N"),
        new("batch", OptionKind.Integer, "pictures per step (default: 8)", "N"),
        new("lr", OptionKind.Number, "learning rate (default: 0.005)", "X"),
        new("rank", OptionKind.Integer, "LoRA rank, alpha the same (default: 8)", "N"),
        new("no-text-encoder", OptionKind.Flag, "train the UNet's LoRA only (default: the text encoder's too)"),
        new("min-snr-gamma", OptionKind.Number, "min-SNR loss weighting with this γ; 0: off (default: 5)", "X"),
        new("seeds", OptionKind.Integer, "seeds per judged prompt; 12 prompts each (default: 2, 24 pictures)", "N"),
        new("examples", OptionKind.Text, "save two judged prompts as PNGs here, with and without the LoRA (default: none)", "DIR"),
        new("verbose", OptionKind.Flag, "print every judged picture"),
        new("threads", OptionKind.Integer, "CPU threads for libtorch (default: 1; the model is so small that a second thread gains little, and on a busy machine it waits on the slower core)", "N"),
    ];

    public static int Run(CommandLine cl)
    {
        var shape = cl.String("shape") is { } shapeWord ? ShapeLoraDemo.Parse(shapeWord) : ShapeLoraDemo.DefaultShape;
        string word = ShapeVocabulary.Word(shape);
        string work = cl.String("work") ?? Path.Combine("runs", word + "-lora");
        string model = cl.String("model") ?? DefaultModel.Locate() ?? throw new UsageException("--model DIR is required (no shipped model found).");
        int pictures = cl.Int("pictures") ?? 60, seeds = cl.Int("seeds") ?? 2;
        if (pictures < 1 || seeds < 1) throw new UsageException($"--pictures and --seeds must be at least 1; got {pictures} and {seeds}.");
        string images = Path.Combine(work, "images");
        var options = new LoraTrainingOptions
        {
            Model = model,
            Images = images,
            Output = Path.Combine(work, word + ".safetensors"),
            Steps = cl.Int("steps") ?? 400,
            Batch = cl.Int("batch") ?? 8,
            LearningRate = cl.Double("lr") ?? 5e-3,
            Rank = cl.Int("rank") ?? 8,
            Alpha = cl.Int("rank") ?? 8,
            TrainTextEncoder = !cl.Flag("no-text-encoder"),
            MinSnrGamma = (cl.Double("min-snr-gamma") ?? 5) is > 0 and var gamma ? gamma : null,
            LossCsv = Path.Combine(work, "loss.csv"),
        };
        TorchRuntime.Initialize(Threads.Check(cl.Int("threads") ?? 1));

        if (Directory.Exists(images)) Directory.Delete(images, recursive: true);
        if (File.Exists(options.LossCsv)) File.Delete(options.LossCsv);
        ShapeLoraDemo.WriteDataset(images, pictures, shape);
        Progress.Line($"Wrote {pictures} captioned {word} pictures to {AtomicFiles.Printable(images)}");
        string loadBefore = LoadAverage();
        var clock = Stopwatch.StartNew();
        TrainLoraCommand.RunWithProgress(options);
        Progress.Line($"Trained {AtomicFiles.Printable(options.Output)} in {clock.Elapsed.TotalMinutes:F1} min ({options.Steps} steps, batch {options.Batch}; " +
            $"load average {loadBefore} before, {LoadAverage()} after)");

        // The trainer's fixed kernels, so the judged rates are the same on every machine (not this machine's fastest).
        using var pipe = StableDiffusionPipeline.Load(model, new Loading.LoadOptions { ChannelsLast = false, Attention = Models.AttentionKernel.Sdpa, Linear = Models.LinearKernel.Default });
        var defaults = Loading.GenerationDefaults.Load(model);
        int steps = defaults?.NumInferenceSteps ?? 25;
        double guidance = defaults?.GuidanceScale ?? 4;
        var prompts = ShapeLoraDemo.Prompts(shape).ToList();
        var heldOut = new ShapeDataset().HeldOutPrompts();
        var seedList = Enumerable.Range(0, seeds).Select(i => 1234L + i).ToList();
        using var lora = LoraFile.Load(options.Output);
        Action<string>? log = cl.Flag("verbose") ? Console.WriteLine : null;
        string? examples = cl.String("examples");
        Action<HeldOutPrompt, long, byte[]> Keep(string suffix) => (p, seed, rgb) =>
        {
            int i = prompts.IndexOf(p);
            if (examples is null || seed != seedList[0] || i >= 2) return;
            Directory.CreateDirectory(examples);
            PngFile.Save(Path.Combine(examples, $"lora-{word}-{p.Combination.Color}{suffix}.png"), ShapeVocabulary.ImageSize, ShapeVocabulary.ImageSize, rgb,
                new Dictionary<string, string> { ["parameters"] = $"{p.Prompt}\nSeed: {seed}{(suffix == "" ? $", Lora: {word}" : "")}" });
        };
        var rows = new[]
        {
            ($"{word} prompts", "with", ShapeLoraDemo.Judge(pipe, shape, prompts, seedList, [new LoraWeight(lora)], steps, guidance, log, Keep(""))),
            ($"{word} prompts", "without", ShapeLoraDemo.Judge(pipe, shape, prompts, seedList, [], steps, guidance, log, Keep("-without"))),
            ("held-out prompts", "with", ShapeLoraDemo.Judge(pipe, shape, heldOut, [seedList[0]], [new LoraWeight(lora)], steps, guidance, log)),
            ("held-out prompts", "without", ShapeLoraDemo.Judge(pipe, shape, heldOut, [seedList[0]], [], steps, guidance, log)),
        };
        Console.WriteLine($"{prompts.Count} {word} prompts × {seeds} seeds and {heldOut.Count} held-out prompts of the trained shapes × 1 seed, {steps} steps, guidance {guidance}:");
        Console.WriteLine($"| prompts | LoRA | kind asked drawn (small, large) | {word} seen | colour | position | colour and position |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        foreach (var (what, name, r) in rows)
            Console.WriteLine($"| {what} | {name} | {r.Asked:P0} ({r.AskedSmall:P0}, {r.AskedLarge:P0}) | {r.NewShape:P0} | {r.Color:P0} | {r.Position:P0} | {r.ColorAndPosition:P0} |");
        return 0;
    }

    /// <summary>The 1-minute load average (Linux), for the record of how busy the machine was; "?" elsewhere.</summary>
    static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "?";
}
