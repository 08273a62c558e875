using SharpDiffusion.Imaging;
using SharpDiffusion.Training;
using Spectre.Console;

namespace SharpDiffusion.Cli;

/// <summary>`train-lora`: trains a kohya-format LoRA on an SD 1.x/2.x model from captioned pictures (<see cref="LoraTrainer"/>).</summary>
public static class TrainLoraCommand
{
    public static readonly OptionSpec[] Options =
    [
        new("model", OptionKind.Text, "an SD 1.x/2.x diffusers folder or single-file checkpoint (default: the shipped sharp-shapes model)", "DIR|FILE"),
        new("images", OptionKind.Text, "the pictures: N_name/ repeat folders (kohya's layout) or pictures directly, captions in same-named .txt files", "DIR"),
        new("output", OptionKind.Text, "the LoRA to write (kohya format .safetensors); checkpoints go beside it as NAME.checkpoint.safetensors", "FILE"),
        new("rank", OptionKind.Integer, "LoRA rank (network_dim) (default: 4)", "N"),
        new("alpha", OptionKind.Number, "LoRA alpha; updates are scaled by alpha / rank (default: 4)", "X"),
        new("steps", OptionKind.Integer, "training steps, a total: a resumed run continues to it (default: 500)", "N"),
        new("lr", OptionKind.Number, "AdamW learning rate, constant (default: 0.0001)", "X"),
        new("text-encoder-lr", OptionKind.Number, "the text encoder's learning rate with --train-text-encoder (default: --lr)", "X"),
        new("batch", OptionKind.Integer, "pictures per step (default: 1)", "N"),
        new("resolution", OptionKind.Integer, "square training size; pictures are resized and centre-cropped to it (default: the model's size)", "N"),
        new("train-text-encoder", OptionKind.Flag, "also train LoRA on the text encoder's attention (q/k/v/out_proj)"),
        new("min-snr-gamma", OptionKind.Number, "min-SNR loss weighting with this γ, e.g. 5 (default: off)", "X"),
        new("seed", OptionKind.Integer, "seed of the LoRA's initial weights and of every step's draws (default: 1)", "N"),
        new("resume", OptionKind.Text, "continue from a checkpoint this command wrote (same options; --steps may grow)", "CHECKPOINT"),
        new("checkpoint-every", OptionKind.Integer, "steps between checkpoints (default: 100)", "N"),
        new("loss-csv", OptionKind.Text, "write the loss curve: step, loss, lr, wall seconds (default: none)", "FILE"),
        new("buckets", OptionKind.Flag, "aspect-ratio buckets (kohya's --enable_bucket): pictures keep their shape at about resolution² pixels, each batch from one bucket"),
        new("min-bucket-reso", OptionKind.Integer, "the buckets' shortest side (default: 256, or --resolution if smaller)", "N"),
        new("max-bucket-reso", OptionKind.Integer, "the buckets' longest side (default: 1024, or --resolution if larger)", "N"),
        new("bucket-reso-steps", OptionKind.Integer, "bucket sides are multiples of this (default: 64)", "N"),
        new("dtype", OptionKind.Text, "the frozen base weights' dtype: float32, bfloat16, or auto (bfloat16 where the CPU computes it natively); the LoRA and AdamW stay float32 (default: float32)", "NAME"),
        new("threads", OptionKind.Integer, "CPU threads for libtorch (default: all cores)", "N"),
    ];

    public static int Run(CommandLine cl)
    {
        var options = Parse(cl);
        int threads = Threads.Check(cl.Int("threads") ?? Environment.ProcessorCount);
        new LoraTrainer(options).Validate(); // one-line errors before the model is loaded
        TorchRuntime.Initialize(threads);
        var (steps, elapsed) = RunWithProgress(options);
        Progress.Line($"Wrote {AtomicFiles.Printable(options.Output)} ({steps} steps, rank {options.Rank}, alpha {options.Alpha}); " +
            $"training time {elapsed.TotalMinutes:F1} min; checkpoint {AtomicFiles.Printable(options.CheckpointPath)}");
        return 0;
    }

    public static LoraTrainingOptions Parse(CommandLine cl)
    {
        var d = new LoraTrainingOptions { Model = "", Images = "", Output = "" };
        return new LoraTrainingOptions
        {
            Model = cl.String("model") ?? DefaultModel.Locate() ?? throw new UsageException("--model DIR|FILE is required (no shipped model found)."),
            Images = cl.String("images") ?? throw new UsageException("--images DIR is required: the folder of captioned training pictures."),
            Output = cl.String("output") ?? throw new UsageException("--output FILE.safetensors is required: where the LoRA is written."),
            Rank = cl.Int("rank") ?? d.Rank,
            Alpha = cl.Double("alpha") ?? d.Alpha,
            Steps = cl.Int("steps") ?? d.Steps,
            LearningRate = cl.Double("lr") ?? d.LearningRate,
            TextEncoderLearningRate = cl.Double("text-encoder-lr"),
            Batch = cl.Int("batch") ?? d.Batch,
            Resolution = cl.Int("resolution"),
            TrainTextEncoder = cl.Flag("train-text-encoder"),
            MinSnrGamma = cl.Double("min-snr-gamma"),
            Seed = cl.Int("seed") ?? d.Seed,
            Resume = cl.String("resume"),
            CheckpointEvery = cl.Int("checkpoint-every") ?? d.CheckpointEvery,
            LossCsv = cl.String("loss-csv"),
            Buckets = cl.Flag("buckets"),
            MinBucketReso = cl.Int("min-bucket-reso"),
            MaxBucketReso = cl.Int("max-bucket-reso"),
            BucketResoSteps = cl.Int("bucket-reso-steps") ?? d.BucketResoSteps,
            BaseDType = FastPathOptions.DType(cl.String("dtype")),
        };
    }

    /// <summary>Trains with a progress bar (loss, elapsed, ETA) in a terminal, or a plain line every 15 s in a log.</summary>
    public static (int Steps, TimeSpan Elapsed) RunWithProgress(LoraTrainingOptions options)
    {
        static void Warn(string w) => Console.Error.WriteLine($"warning: {w}");
        using var cancel = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cancel.Cancel(); };
        if (Console.IsOutputRedirected || !AnsiConsole.Profile.Capabilities.Interactive)
        {
            DateTime last = DateTime.MinValue;
            int first = -1;
            var clock = System.Diagnostics.Stopwatch.StartNew();
            return new LoraTrainer(options, p =>
            {
                if (first < 0) first = p.Step - 1;
                if (p.Step != p.TotalSteps && DateTime.UtcNow - last < TimeSpan.FromSeconds(15)) return;
                last = DateTime.UtcNow;
                // ETA from this session's pace (a resumed run's earlier sessions ran other steps at another time).
                double perStep = clock.Elapsed.TotalSeconds / Math.Max(1, p.Step - first);
                Console.WriteLine($"step {p.Step}/{p.TotalSteps}  loss {p.Loss:F4}  elapsed {p.Elapsed.TotalMinutes:F1} min  ETA {perStep * (p.TotalSteps - p.Step) / 60:F1} min");
            }, Warn).Run(cancel.Token);
        }

        (int, TimeSpan) result = default;
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(Progress.ColumnsFor(AnsiConsole.Profile.Width))
            .Start(ctx =>
            {
                var task = ctx.AddTask("LoRA", maxValue: options.Steps);
                result = new LoraTrainer(options, p =>
                {
                    task.Value = p.Step;
                    task.Description = $"LoRA loss {p.Loss:F4}";
                }, Warn).Run(cancel.Token);
            });
        return result;
    }
}
