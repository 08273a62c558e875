using SharpDiffusion.Imaging;
using SharpDiffusion.Loading;
using SharpDiffusion.Server;
using SharpDiffusion.Server.Hosting;

namespace SharpDiffusion.Cli;

/// <summary>`serve`: the HTTP server (AUTOMATIC1111's API, OpenAI's images API, the web page) until Ctrl-C.</summary>
public static class ServeCommand
{
    public static readonly OptionSpec[] Options =
    [
        new("model", OptionKind.Text, "the model loaded at start: a diffusers folder or a single-file checkpoint (default: the shipped models/sharp-shapes)", "DIR|FILE"),
        new("config", OptionKind.Text, "with a single-file --model: its original LDM .yaml", "FILE"),
        new("models-dir", OptionKind.Text, "more models clients may choose by name (folders with model_index.json, .safetensors/.ckpt files); LoRAs from its Lora/, embeddings from its embeddings/ (default: none)", "DIR"),
        new("lora-dir", OptionKind.Text, "where <lora:NAME:SCALE> in prompts finds NAME.safetensors (default: MODELS_DIR/Lora if it exists)", "DIR"),
        new("controlnet-dir", OptionKind.Text, "ControlNets (.safetensors/.pth files, diffusers folders) that API units name as /controlnet/model_list lists them (default: MODELS_DIR/ControlNet if it exists)", "DIR"),
        new("upscaler-dir", OptionKind.Text, "ESRGAN-family upscalers (.pth/.safetensors) that the Extras API and hr_upscaler name by file stem, as /sdapi/v1/upscalers lists them (default: MODELS_DIR/ESRGAN if it exists)", "DIR"),
        new("embeddings-dir", OptionKind.Text, "textual-inversion embeddings loaded into every model (default: MODELS_DIR/embeddings if it exists)", "DIR"),
        new("host", OptionKind.Text, "address to listen on; 0.0.0.0 for every interface (default: 127.0.0.1, this machine only)", "ADDR"),
        new("port", OptionKind.Integer, "port; 0 = any free port, printed at start (default: 7860)", "N"),
        new("api-auth", OptionKind.Text, "HTTP Basic credentials required on every route, as AUTOMATIC1111's --api-auth (default: none)", "USER:PASS[,USER2:PASS2]"),
        new("cors-origin", OptionKind.Texts, "an origin allowed to call the API from a browser; repeatable (default: none)", "ORIGIN"),
        new("queue-size", OptionKind.Integer, "jobs that may wait behind the running one; more are refused with 503 and Retry-After (default: 16)", "N"),
        new("output-dir", OptionKind.Text, "also write every generated PNG here (default: nowhere; images only go back to the client)", "DIR"),
        new("max-body-mb", OptionKind.Integer, "largest request body in MB; more is refused with 413 (default: 64)", "N"),
        new("max-image-side", OptionKind.Integer, "largest width/height a request may ask for or upload, in pixels (default: 4096)", "N"),
        new("dtype", OptionKind.Text, FastPathOptions.DTypeHelp, "NAME"),
        new("threads", OptionKind.Integer, "CPU threads for libtorch, at most the cores (default: all cores)", "N"),
        .. FastPathOptions.Options,
        new("low-memory", OptionKind.Flag, "keep each part's weights in memory only while it runs (text encoder, UNet, VAE): the least memory, but every job reads them again"),
        new("queue", OptionKind.Text, "run as a gateway of a Redis job queue: no model here; `worker` processes (any machine) generate; --model, --models-dir, --dtype and --output-dir are then the workers' (default: none, one process)", "redis://HOST:PORT[/DB] | redis+sentinel://HOST:PORT[,…]/SERVICE[/DB]"),
        new("job-retention", OptionKind.Integer, "minutes a finished job (its state and result) stays readable by id (default: 30)", "N"),
    ];

    /// <summary>A queue URL that parses, or a usage error that shows the form (serve --queue, worker --queue).</summary>
    internal static string CheckQueue(string url)
    {
        try { SharpDiffusion.Server.Distributed.RedisAddress.Parse(url); }
        catch (ArgumentException e) { throw new UsageException(e.Message); }
        return url;
    }

    /// <summary>--model, else the shipped model; it must exist.</summary>
    internal static string Model(CommandLine cl)
    {
        string model = cl.String("model") ?? DefaultModel.Locate()
            ?? throw new UsageException("--model DIR|FILE is required (the shipped models/sharp-shapes was not found).");
        if (!File.Exists(model) && !Directory.Exists(model))
            throw new UsageException($"--model: {AtomicFiles.Printable(model)} does not exist.");
        return model;
    }

    /// <summary>The folder an option names, which must exist; null when not given.</summary>
    internal static string? Folder(CommandLine cl, string option)
    {
        string? given = cl.String(option);
        if (given is not null && !Directory.Exists(given))
            throw new UsageException($"--{option}: the folder {AtomicFiles.Printable(given)} does not exist.");
        return given;
    }

    internal static int MaxImageSide(CommandLine cl)
    {
        int maxSide = cl.Int("max-image-side") ?? 4096;
        if (maxSide is < 64 or > 8192) throw new UsageException($"--max-image-side must be 64 to 8192; got {maxSide}.");
        return maxSide;
    }

    /// <summary>--output-dir, created and checked writable before any work; null when not given.</summary>
    internal static string? OutputDir(CommandLine cl)
    {
        string? outputDir = cl.String("output-dir");
        if (outputDir is not null)
        {
            Directory.CreateDirectory(outputDir);
            AtomicFiles.CheckWritableFolder(outputDir);
        }
        return outputDir;
    }

    /// <summary>How the model is loaded (serve and worker): --dtype, --low-memory, --channels-last, --attention.</summary>
    internal static LoadOptions Load(CommandLine cl) =>
        FastPathOptions.Apply(new LoadOptions { DType = GenerateCommand.ParseDType(cl.String("dtype")), LowMemory = cl.Flag("low-memory") }, cl);

    public static int Run(CommandLine cl)
    {
        string? queueUrl = cl.String("queue") is { } url ? CheckQueue(url) : null;
        int retention = cl.Int("job-retention") ?? 30;
        if (retention is < 1 or > 10_080)
            throw new UsageException($"--job-retention must be 1 to 10080 minutes; got {retention}.");
        string model = queueUrl is not null ? cl.String("model") ?? "" : Model(cl); // a gateway loads no model
        string? modelsDir = Folder(cl, "models-dir");
        string? Sub(string option, string name) =>
            Folder(cl, option) ?? (modelsDir is not null && Directory.Exists(Path.Combine(modelsDir, name)) ? Path.Combine(modelsDir, name) : null);
        int port = cl.Int("port") ?? 7860;
        if (port is < 0 or > 65535)
            throw new UsageException($"--port must be 0 to 65535; got {port}.");
        int queue = cl.Int("queue-size") ?? 16;
        if (queue is < 0 or > 100_000)
            throw new UsageException($"--queue-size must be 0 to 100000; got {queue}.");
        int maxBody = cl.Int("max-body-mb") ?? 64, maxSide = MaxImageSide(cl);
        if (maxBody is < 1 or > 2048) throw new UsageException($"--max-body-mb must be 1 to 2048; got {maxBody}.");
        string? outputDir = OutputDir(cl);
        var options = new ServerOptions
        {
            Model = model,
            OriginalConfig = cl.String("config"),
            ModelsDir = modelsDir,
            LoraDir = Sub("lora-dir", "Lora"),
            EmbeddingsDir = Sub("embeddings-dir", "embeddings"),
            ControlNetDir = Sub("controlnet-dir", "ControlNet"),
            UpscalerDir = Sub("upscaler-dir", "ESRGAN"),
            Host = cl.String("host") ?? "127.0.0.1",
            Port = port,
            ApiAuth = cl.String("api-auth") is { } auth ? BasicAuth.Parse(auth) : [],
            CorsOrigins = cl.All("cors-origin"),
            QueueSize = queue,
            OutputDir = outputDir,
            MaxBodyBytes = (long)maxBody << 20,
            MaxImageSide = maxSide,
            Threads = Threads.Check(cl.Int("threads") ?? Environment.ProcessorCount),
            Load = Load(cl),
            Queue = queueUrl,
            JobRetention = TimeSpan.FromMinutes(retention),
        };
        // Ctrl-C stops here; SIGTERM is handled by the host itself (it ends WaitAsync). The handler is removed before the
        // token is disposed: it would otherwise throw ObjectDisposedException on a later Ctrl-C.
        using var stop = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; stop.Cancel(); };
        Console.CancelKeyPress += onCancel;
        Progress.Line(queueUrl is null ? $"Loading {AtomicFiles.Printable(model)}" : $"Connecting to the job queue {queueUrl}");
        SharpDiffusionServer server;
        try { server = Progress.Status("Loading model", () => SharpDiffusionServer.StartAsync(options).GetAwaiter().GetResult()); }
        catch
        {
            Console.CancelKeyPress -= onCancel;
            throw;
        }
        try
        {
            foreach (var warning in server.Context.Host?.LoadWarnings ?? [])
                Progress.Line($"warning: {warning}");
            string what = server.Context.Host?.Current.Name ?? $"the workers of {queueUrl}";
            Progress.Line($"Serving {what} on {server.Url} (web page: {server.Url}/, AUTOMATIC1111 API: {server.Url}/sdapi/v1, OpenAI: {server.Url}/v1); Ctrl-C stops.");
            Console.Out.Flush();
            server.WaitAsync(stop.Token).GetAwaiter().GetResult();
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
            server.DisposeAsync().AsTask().GetAwaiter().GetResult();
            Progress.Line("Stopped.");
        }
        return 0;
    }
}
