using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using SharpDiffusion.Server.A1111;
using SharpDiffusion.Server.Catalog;
using SharpDiffusion.Server.Jobs;

namespace SharpDiffusion.Server.Hosting;

/// <summary>Everything one server instance holds; the endpoints share it (nothing is static).</summary>
public sealed class ServerContext : IDisposable
{
    public ServerContext(ServerOptions options)
    {
        Options = options;
        Catalog = new ModelCatalog(options.Model, options.ModelsDir);
        Loras = new LoraCatalog(options.LoraDir);
        Host = new ModelHost(options, Catalog);
        Settings = new ServerSettings();
        Queue = new JobQueue(options.QueueSize, options.JobRetention);
        Work = new GenerationWork(Host, Catalog, Settings, options.OutputDir);
    }

    public ServerOptions Options { get; }
    public ModelCatalog Catalog { get; }
    public LoraCatalog Loras { get; }
    public ModelHost Host { get; }
    public ServerSettings Settings { get; }
    public JobQueue Queue { get; }
    public GenerationWork Work { get; }

    public static string NewJobId() => $"task({Guid.NewGuid():N}"[..21] + ")";

    /// <summary>Queues a generation and returns its job.</summary>
    public Job Submit(GenerationRequest request, string kind) =>
        Queue.Enqueue(new Job(request.TaskId ?? NewJobId(), kind, job => Work.Run(job, request)));

    /// <summary>Waits for the job; if the client goes away first, the job is cancelled (queued: at once; running: at its next step).</summary>
    public async Task WaitAsync(Job job, CancellationToken clientGone)
    {
        try { await job.Finished.WaitAsync(clientGone); }
        catch (OperationCanceledException) when (clientGone.IsCancellationRequested)
        {
            Queue.Cancel(job, "the client disconnected");
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
        Host.Dispose();
    }
}
