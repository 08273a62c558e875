using SharpDiffusion.Loading;
using SharpDiffusion.Training;
using Spectre.Console;

namespace SharpDiffusion.Cli;

/// <summary>`train`: trains the shapes text-to-image model (VAE, then UNet + text encoder) and saves a diffusers folder.</summary>
public static class TrainCommand
{
    public const string Help = """
        train options (a run resumes from the checkpoints in --work; step counts are totals):
          --output DIR             where the diffusers model folder is written (default: models/sharp-shapes)
          --work DIR               checkpoints, latents and state of the run (default: runs/sharp-shapes)
          --tokenizer DIR          CLIP tokenizer files copied into the model (default: the shipped model's tokenizer/)
          --vae-steps N            VAE steps (default: 1600)
          --vae-batch N            VAE batch size (default: 16)
          --steps N                UNet + text encoder steps (default: 9000)
          --batch N                UNet batch size (default: 32)
          --lr X                   UNet + text encoder peak learning rate (default: 0.0004)
          --dataset-size N         scenes encoded to latents for the UNet stage (default: 20000)
          --seed N                 dataset and noise seed (default: 1)
          --checkpoint-every N     steps between checkpoints (default: 200)
          --loss-csv FILE          append the per-step loss curve with wall times (default: none)
          --sample-steps N         steps written to generation_defaults.json (default: 25)
          --sample-guidance X      guidance written to generation_defaults.json (default: 4)
          --micro                  a tiny architecture (smoke tests)
          --threads N              CPU threads for libtorch (default: all cores)
        """;

    public static int Run(string[] args)
    {
        if (args.Contains("--help") || args.Contains("-h"))
        {
            Console.WriteLine(Help);
            return 0;
        }
        var cl = new CommandLine(args, new HashSet<string> { "micro" });
        if (cl.Positionals.Count > 0)
            throw new UsageException($"Unexpected argument '{cl.Positionals[0]}'. Options start with --; see train --help.");
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
        cl.RejectUnknown();
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
