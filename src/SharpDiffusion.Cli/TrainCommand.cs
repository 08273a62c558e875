using SharpDiffusion.Loading;
using SharpDiffusion.Training;
using Spectre.Console;

namespace SharpDiffusion.Cli;

/// <summary>`train`: trains the shapes text-to-image model (VAE, then UNet + text encoder) and saves a diffusers folder.</summary>
public static class TrainCommand
{
    public static readonly OptionSpec[] Options =
    [
        new("output", OptionKind.Text, "where the diffusers model folder is written (default: models/sharp-shapes)", "DIR"),
        new("work", OptionKind.Text, "checkpoints, latents and state of the run; a run resumes from them (default: runs/sharp-shapes)", "DIR"),
        new("tokenizer", OptionKind.Text, "CLIP tokenizer files copied into the model (default: the shipped model's tokenizer/)", "DIR"),
        new("vae-steps", OptionKind.Integer, "VAE steps, a total (default: 1600)", "N"),
        new("vae-batch", OptionKind.Integer, "VAE batch size (default: 16)", "N"),
        new("steps", OptionKind.Integer, "UNet + text encoder steps, a total (default: 9000)", "N"),
        new("batch", OptionKind.Integer, "UNet batch size (default: 32)", "N"),
        new("lr", OptionKind.Number, "UNet + text encoder peak learning rate (default: 0.0004)", "X"),
        new("dataset-size", OptionKind.Integer, "scenes encoded to latents for the UNet stage (default: 20000)", "N"),
        new("seed", OptionKind.Integer, "dataset and noise seed (default: 1)", "N"),
        new("checkpoint-every", OptionKind.Integer, "steps between checkpoints (default: 200)", "N"),
        new("loss-csv", OptionKind.Text, "append the per-step loss curve with wall times (default: none)", "FILE"),
        new("sample-steps", OptionKind.Integer, "steps written to generation_defaults.json (default: 25)", "N"),
        new("sample-guidance", OptionKind.Number, "guidance written to generation_defaults.json (default: 4)", "X"),
        new("micro", OptionKind.Flag, "a tiny architecture (smoke tests)"),
        new("threads", OptionKind.Integer, "CPU threads for libtorch (default: all cores)", "N"),
    ];

    public static int Run(CommandLine cl)
    {
        var d = new TrainingOptions { WorkDir = "", OutputDir = "", TokenizerDir = "" };
        string? tokenizer = cl.String("tokenizer");
        if (tokenizer is null)
        {
            string shipped = DefaultModel.Locate(Path.Combine("tokenizer", "vocab.json")) ?? throw new UsageException("--tokenizer DIR is required (no shipped model found to take it from).");
            tokenizer = Path.Combine(shipped, "tokenizer");
        }
        var options = new TrainingOptions
        {
            OutputDir = cl.String("output") ?? Path.Combine("models", DefaultModel.Name),
            WorkDir = cl.String("work") ?? Path.Combine("runs", DefaultModel.Name),
            TokenizerDir = tokenizer,
            Spec = cl.Flag("micro") ? ShapesModelSpec.Micro : ShapesModelSpec.SharpShapes,
            VaeSteps = cl.Int("vae-steps") ?? d.VaeSteps,
            VaeBatch = cl.Int("vae-batch") ?? d.VaeBatch,
            DenoiserSteps = cl.Int("steps") ?? d.DenoiserSteps,
            DenoiserBatch = cl.Int("batch") ?? d.DenoiserBatch,
            DenoiserLearningRate = cl.Double("lr") ?? d.DenoiserLearningRate,
            DatasetSize = cl.Int("dataset-size") ?? d.DatasetSize,
            Seed = cl.Int("seed") ?? d.Seed,
            CheckpointEvery = cl.Int("checkpoint-every") ?? d.CheckpointEvery,
            LossCsv = cl.String("loss-csv"),
            Defaults = new GenerationDefaults
            {
                NumInferenceSteps = cl.Int("sample-steps") ?? d.Defaults.NumInferenceSteps,
                GuidanceScale = cl.Double("sample-guidance") ?? d.Defaults.GuidanceScale,
            },
        };
        int threads = cl.Int("threads") ?? Environment.ProcessorCount;
        foreach (var (name, value) in new[] { ("vae-steps", options.VaeSteps), ("vae-batch", options.VaeBatch), ("steps", options.DenoiserSteps),
                     ("batch", options.DenoiserBatch), ("dataset-size", options.DatasetSize), ("checkpoint-every", options.CheckpointEvery), ("threads", threads) })
            if (value < 1) throw new UsageException($"--{name} must be at least 1; got {value}.");
        if (!File.Exists(Path.Combine(options.TokenizerDir, "vocab.json")))
            throw new UsageException($"{options.TokenizerDir} holds no CLIP tokenizer (vocab.json).");
        TorchRuntime.Initialize(Threads.Check(threads));

        var state = RunWithProgress(options);
        Progress.Line($"Saved {options.OutputDir} (latent scaling factor {state.ScalingFactor}); total training time {state.ElapsedSeconds / 60:F1} min");
        return 0;
    }

    static TrainingState RunWithProgress(TrainingOptions options)
    {
        using var cancel = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cancel.Cancel(); };
        if (Console.IsOutputRedirected || !AnsiConsole.Profile.Capabilities.Interactive)
        {
            DateTime last = DateTime.MinValue;
            string lastStage = "";
            return new ShapesTrainer(options, p =>
            {
                bool stageEnd = p.Step == p.TotalSteps;
                if (p.Stage == lastStage && !stageEnd && DateTime.UtcNow - last < TimeSpan.FromSeconds(15)) return;
                last = DateTime.UtcNow;
                lastStage = p.Stage;
                double rate = p.Elapsed.TotalSeconds > 0 ? p.Step / p.Elapsed.TotalSeconds : 0;
                Console.WriteLine(p.Stage == "save" ? "Saving model" :
                    $"{p.Stage} {p.Step}/{p.TotalSteps}" + (double.IsNaN(p.Loss) ? "" : $"  loss {p.Loss:F4}") + $"  elapsed {p.Elapsed.TotalMinutes:F1} min");
            }).Run(cancel.Token);
        }

        TrainingState state = null!;
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(),
                new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var tasks = new Dictionary<string, ProgressTask>();
                state = new ShapesTrainer(options, p =>
                {
                    if (!tasks.TryGetValue(p.Stage, out var task))
                        tasks[p.Stage] = task = ctx.AddTask(p.Stage, maxValue: Math.Max(1, p.TotalSteps));
                    task.Value = p.Step;
                    task.Description = double.IsNaN(p.Loss) ? p.Stage : $"{p.Stage} loss {p.Loss:F4}";
                }).Run(cancel.Token);
            });
        return state;
    }
}
