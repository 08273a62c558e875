using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using SharpDiffusion.Server.A1111;
using SharpDiffusion.Server.Catalog;
using SharpDiffusion.Server.Distributed;
using SharpDiffusion.Server.Jobs;

namespace SharpDiffusion.Server.Hosting;

/// <summary>Everything one server instance holds; the endpoints share it (nothing is static).</summary>
public sealed class ServerContext : IDisposable
{
    public ServerContext(ServerOptions options)
    {
        Options = options;
        Loras = new LoraCatalog(options.LoraDir);
        Settings = new ServerSettings();
        if (options.PreviewVae is not null)
            Settings.Apply(new JsonObject { ["show_progress_type"] = "TAESD" }); // A1111's name for TAESD previews
        if (options.Queue is { } url)
        {
            Gateway = RedisGateway.Connect(url, options);
            var gateway = Gateway;
            Vaes = VaeCatalog.OfWorkers(() => gateway.Vaes); // the workers' --vae-dir
            Catalog = new ModelCatalog(Gateway.Models, live: true);
            Queue = Gateway;
            Files = Gateway.Files;
        }
        else
        {
            Catalog = new ModelCatalog(options.Model, options.ModelsDir);
            Vaes = new VaeCatalog(options.VaeDir);
            Host = new ModelHost(options, Catalog);
            LocalQueue = new JobQueue(options.QueueSize, options.JobRetention);
            Queue = LocalQueue;
            Work = new GenerationWork(Host, Catalog, Settings, options.OutputDir) { Vaes = Vaes };
            Files = new MemoryImageFiles();
        }
    }

    public ServerOptions Options { get; }
    public ModelCatalog Catalog { get; }
    public LoraCatalog Loras { get; }
    /// <summary>The separate VAEs the sd_vae option may name (serve --vae-dir; a gateway's: its workers' --vae-dir).</summary>
    public VaeCatalog Vaes { get; }
    public ServerSettings Settings { get; }
    public IJobQueue Queue { get; }
    /// <summary>Generated files served by URL (OpenAI's response_format "url").</summary>
    public IImageFiles Files { get; }
    /// <summary>One process: the loaded model, its queue and the work it runs (null for a gateway).</summary>
    public ModelHost? Host { get; }
    public JobQueue? LocalQueue { get; }
    public GenerationWork? Work { get; }
    /// <summary>A gateway of a Redis queue (null for one process).</summary>
    public RedisGateway? Gateway { get; }

    /// <summary>The model a request without sd_model_checkpoint gets: the loaded one, or (gateway) the one chosen with
    /// POST /options, else the first served; null when no worker serves any.</summary>
    public ModelEntry? CurrentModel => Host?.Current
        ?? (_gatewayModel is { } m && Catalog.Find(m) is { } chosen ? chosen : Catalog.Entries.FirstOrDefault());

    string? _gatewayModel;

    /// <summary>A1111's short hash of a model, when known.</summary>
    public string? HashOf(ModelEntry entry) => Host is not null
        ? (entry == Host.Current ? Host.CurrentHash : null)
        : Gateway!.HashOf(entry.Name);

    public IReadOnlyList<string> Embeddings => Host?.Embeddings ?? Gateway!.Embeddings;

    public static string NewJobId() => $"task({Guid.NewGuid():N}"[..21] + ")";

    /// <summary>Queues a generation and returns its job.</summary>
    public async Task<Job> SubmitAsync(GenerationRequest request, string kind)
    {
        if (Gateway is null)
            return LocalQueue!.Enqueue(new Job(request.TaskId ?? NewJobId(), kind, job => Work!.Run(job, request)));
        string model = await GatewayModelAsync(request.Checkpoint);
        string? vae = request.Vae ?? Settings.SdVae;
        if (!VaeCatalog.IsModelsOwn(vae)) await Gateway.RefreshWorkersAsync(); // checked against the workers there now, not a second ago
        Gateway.CheckVae(vae, model); // each worker of the model resolves the name in its own folder
        return await Gateway.SubmitAsync(request, kind, model, Settings);
    }

    /// <summary>A gateway's job that is not one generation (an Extras upscale, an X/Y/Z plot): its payload queued for
    /// the workers of <paramref name="checkpoint"/> (the current model when null).</summary>
    public async Task<Job> SubmitToWorkersAsync(string id, JsonObject payload, string kind, string? checkpoint) =>
        await Gateway!.SubmitAsync(id, payload, kind, await GatewayModelAsync(checkpoint), Settings);

    async Task<string> GatewayModelAsync(string? checkpoint)
    {
        var model = ServedModel(checkpoint);
        if (model is null)
        {
            await Gateway!.RefreshWorkersAsync(); // a worker that started within the last second
            model = ServedModel(checkpoint);
        }
        if (model is null && checkpoint is { } name)
            throw new ArgumentException($"Model '{name}' not found: no worker serves it; GET /sdapi/v1/sd-models lists the names served ({Served()}).");
        return (model ?? throw new QueueRefusedException(
            "No worker is connected to the queue; start one with `sharpdiffusion worker --queue URL --model DIR|FILE`.", 503, 5, "NoWorker")).Name;
    }

    ModelEntry? ServedModel(string? name) => name is null ? CurrentModel : Catalog.Find(name); // a gateway's catalog is live

    /// <summary>Stores options (checked first: all or none). A gateway stores them in Redis too, so every gateway uses
    /// them, with <paramref name="model"/> (POST /options sd_model_checkpoint) as the model requests get by default.</summary>
    public void SetSettings(JsonObject changes, ModelEntry? model = null)
    {
        if (Gateway is not null)
        {
            ServerSettings.Check(changes); // refused before anything is stored anywhere
            var shared = (JsonObject)changes.DeepClone();
            shared.Remove("sd_model_checkpoint");
            if (model is not null) shared["sd_model_checkpoint"] = model.Name;
            Gateway.SaveSettings(shared);
        }
        lock (_settingsGate)
        {
            _settingsVersion++;
            if (Gateway is not null && model is not null) _gatewayModel = model.Name;
            Settings.Set(changes);
        }
    }

    readonly object _settingsGate = new();
    int _settingsVersion;

    /// <summary>An A1111-style request body as this server's request: with the options in effect now (for a gateway, the
    /// ones set through any gateway).</summary>
    public async Task<GenerationRequest> ParseRequestAsync(JsonObject body, string task)
    {
        await SyncSettingsAsync();
        GenerationRequest Parse(JsonObject b) => A1111Requests.Parse(b, task, Settings.ClipSkip, Options.MaxImageSide, Loras.Directory, TargetOf(b)?.Traits,
            Options.ControlNetDir, Options.UpscalerDir, Gateway?.ControlNets(TargetOf(b)?.Name));
        return Gateway is { } gateway ? gateway.Parse(body, task, Parse) : Parse(body); // a gateway's upscaler models are the workers'
    }

    /// <summary>The model a request body will run on, as far as it is known now: override_settings' sd_model_checkpoint,
    /// else the current one (null when the name matches none: the job says so).</summary>
    ModelEntry? TargetOf(JsonObject body) =>
        body["override_settings"] is JsonObject o && o["sd_model_checkpoint"] is JsonValue v && v.TryGetValue(out string? name) && name.Length > 0
            ? Catalog.Find(name)
            : CurrentModel;

    /// <summary>A gateway takes the options set through any gateway (before a request uses them); one process has them all.
    /// A read that a change through this gateway overtook is not applied (it would undo the change until the next read).</summary>
    public async Task SyncSettingsAsync()
    {
        if (Gateway is null) return;
        int seen;
        lock (_settingsGate) seen = _settingsVersion;
        var stored = await Gateway.LoadSettingsAsync();
        lock (_settingsGate)
        {
            if (seen != _settingsVersion) return;
            if (stored["sd_model_checkpoint"] is JsonValue v && v.TryGetValue(out string? model)) _gatewayModel = model;
            Settings.Apply(stored);
        }
    }

    string Served() => Catalog.Entries.Count == 0 ? "none" : string.Join(", ", Catalog.Entries.Select(e => e.Name));

    /// <summary>Waits for the job; if the client goes away first, the job is cancelled (queued: at once; running: at its next step).</summary>
    public async Task WaitAsync(Job job, CancellationToken clientGone)
    {
        try { await job.Finished.WaitAsync(clientGone); }
        catch (OperationCanceledException) when (clientGone.IsCancellationRequested)
        {
            await Queue.CancelAsync(job, "the client disconnected");
            throw;
        }
    }

    /// <summary>The request body as a JSON object. Malformed JSON and other types are a <see cref="RequestValidationException"/>;
    /// a body over the limit a <see cref="BadHttpRequestException"/> with 413 (from Kestrel).</summary>
    public static async Task<JsonObject> ReadObjectAsync(HttpContext context)
    {
        JsonNode? node;
        try
        {
            node = await JsonNode.ParseAsync(context.Request.Body, documentOptions: new JsonDocumentOptions { MaxDepth = 64 },
                cancellationToken: context.RequestAborted);
        }
        catch (JsonException e)
        {
            throw new RequestValidationException([new FieldError("body", $"the body is not valid JSON ({e.Message.Split(" Path:")[0]})", "value_error.jsondecode")]);
        }
        return node as JsonObject
            ?? throw new RequestValidationException([new FieldError("body", "the body must be a JSON object", "type_error.dict")]);
    }

    public void Dispose()
    {
        Queue.Dispose();
        Host?.Dispose();
    }
}
