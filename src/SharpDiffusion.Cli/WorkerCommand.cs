using System.Runtime.InteropServices;
using SharpDiffusion.Imaging;
using SharpDiffusion.Loading;
using SharpDiffusion.Server;
using SharpDiffusion.Server.Distributed;

namespace SharpDiffusion.Cli;

/// <summary>`worker`: loads one model and generates the jobs `serve --queue` gateways put into Redis, until Ctrl-C or SIGTERM
/// (the job running then is finished first).</summary>
public static class WorkerCommand
{
    public static readonly OptionSpec[] Options =
    [
        new("queue", OptionKind.Text, "the Redis job queue the gateways (`serve --queue`) write to (required)", "redis://HOST:PORT[/DB] | redis+sentinel://HOST:PORT[,…]/SERVICE[/DB]"),
        new("model", OptionKind.Text, "the model this worker serves: a diffusers folder or a single-file checkpoint; clients name it by its folder or file name (default: the shipped models/sharp-shapes)", "DIR|FILE"),
        new("config", OptionKind.Text, "with a single-file --model: its original LDM .yaml", "FILE"),
        new("lora-dir", OptionKind.Text, "where <lora:NAME:SCALE> in prompts finds NAME.safetensors (default: none)", "DIR"),
        new("embeddings-dir", OptionKind.Text, "textual-inversion embeddings loaded into the model (default: none)", "DIR"),
        new("upscaler-dir", OptionKind.Text, "ESRGAN-family upscalers (.pth/.safetensors) that Extras requests and hr_upscaler name by file stem; announced to the gateways, whose /sdapi/v1/upscalers lists them (default: none; a worker has no --models-dir)", "DIR"),
        new("controlnet-dir", OptionKind.Text, "the ControlNets that jobs' units name (as serve's --controlnet-dir; give the workers of one model the same files) (default: none)", "DIR"),
        new("vae-dir", OptionKind.Text, "separate VAE files and folders that sd_vae and override_settings.sd_vae name (as serve's --vae-dir); announced to the gateways, whose /sdapi/v1/sd-vae lists them; give the workers of one model the same files (default: none)", "DIR"),
        new("name", OptionKind.Text, "this worker's name, unique among the workers (default: HOST-PID)", "NAME"),
        new("visibility-timeout", OptionKind.Integer, "seconds without a heartbeat after which another worker takes over a job of this one (default: 30)", "S"),
        new("output-dir", OptionKind.Text, "also write every PNG this worker generates here (default: nowhere; images only go back to the client)", "DIR"),
        new("max-image-side", OptionKind.Integer, "largest width/height a request may ask for or upload, in pixels (default: 4096)", "N"),
        new("dtype", OptionKind.Text, FastPathOptions.DTypeHelp, "NAME"),
        new("threads", OptionKind.Integer, "CPU threads for libtorch, at most the cores (default: all cores)", "N"),
        .. FastPathOptions.Options,
        new("low-memory", OptionKind.Flag, "keep each part's weights in memory only while it runs (text encoder, UNet, VAE): the least memory, but every job reads them again"),
    ];

    public static int Run(CommandLine cl)
    {
        string queue = ServeCommand.CheckQueue(cl.String("queue")
            ?? throw new UsageException("--queue redis://HOST:PORT[/DB] is required: the queue `serve --queue` writes to."));
        string model = ServeCommand.Model(cl);
        string? loraDir = ServeCommand.Folder(cl, "lora-dir"), embeddingsDir = ServeCommand.Folder(cl, "embeddings-dir"),
            upscalerDir = ServeCommand.Folder(cl, "upscaler-dir");
        int visibility = cl.Int("visibility-timeout") ?? 30;
        if (visibility is < 2 or > 86_400) throw new UsageException($"--visibility-timeout must be 2 to 86400 seconds; got {visibility}.");
        int maxSide = ServeCommand.MaxImageSide(cl);
        string? outputDir = ServeCommand.OutputDir(cl);
        string? name = cl.String("name");
        if (name is not null && (name.Length is 0 or > 100 || name.Any(char.IsControl)))
            throw new UsageException($"--name must be 1 to 100 printable characters; got '{AtomicFiles.Printable(name)}'.");
        var options = new WorkerOptions
        {
            Queue = queue,
            Server = new ServerOptions
            {
                Model = model,
                OriginalConfig = cl.String("config"),
                LoraDir = loraDir,
                EmbeddingsDir = embeddingsDir,
                UpscalerDir = upscalerDir,
                ControlNetDir = ServeCommand.Folder(cl, "controlnet-dir"),
                VaeDir = ServeCommand.Folder(cl, "vae-dir"),
                MaxImageSide = maxSide,
                OutputDir = outputDir,
                Threads = Threads.Check(cl.Int("threads") ?? Environment.ProcessorCount),
                Load = ServeCommand.Load(cl),
            },
            VisibilityTimeout = TimeSpan.FromSeconds(visibility),
        };
        if (name is not null) options = options with { Name = name };

        Progress.Line($"Loading {AtomicFiles.Printable(model)}");
        using var worker = Progress.Status("Loading model", () => RedisWorker.Start(options));
        foreach (var warning in worker.LoadWarnings)
            Progress.Line($"warning: {warning}");
        using var stop = new CancellationTokenSource();
        void Stop(PosixSignalContext c) { c.Cancel = true; stop.Cancel(); }
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        Progress.Line($"Worker {worker.Name} serving {worker.Model} from {queue}; Ctrl-C stops.");
        Console.Out.Flush();
        worker.Run(stop.Token, line => Progress.Line(line));
        Progress.Line("Stopped.");
        return 0;
    }
}
