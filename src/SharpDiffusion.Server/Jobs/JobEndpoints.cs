using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using SharpDiffusion.Server.A1111;
using SharpDiffusion.Server.Hosting;

namespace SharpDiffusion.Server.Jobs;

/// <summary>
/// Jobs by id, for the page and for clients that do not want to hold a request open: POST /jobs (an A1111 body plus
/// "task": "txt2img" | "img2img") answers 202 at once; GET /jobs/{id} is its state (and result when done);
/// GET /jobs/{id}/events streams the state as Server-Sent Events until it ends; DELETE /jobs/{id} (or POST
/// /jobs/{id}/cancel) cancels it, queued or running.
/// </summary>
public static class JobEndpoints
{
    public static void Map(WebApplication app, ServerContext server)
    {
        app.MapPost("/jobs", (HttpContext c) => ApiCall.A1111(c, async () =>
        {
            var body = await ServerContext.ReadObjectAsync(c);
            string task = body["task"] is JsonValue v && v.TryGetValue(out string? t) ? t : "txt2img";
            if (task is not ("txt2img" or "img2img"))
                throw new RequestValidationException([new FieldError("task", "must be txt2img or img2img", "value_error")]);
            var request = await server.ParseRequestAsync(body, task);
            var job = await server.SubmitAsync(request, task);
            return new JsonResult(202, job.Describe(await server.Queue.PositionOfAsync(job), withResult: false));
        }));
        app.MapGet("/jobs/{id}", (string id, HttpContext c) => ApiCall.A1111(c, async () =>
        {
            var job = await FindAsync(server, id);
            return new JsonResult(200, job.Describe(await server.Queue.PositionOfAsync(job), withResult: true));
        }));
        app.MapDelete("/jobs/{id}", (string id, HttpContext c) => ApiCall.A1111(c, () => Cancel(server, id)));
        app.MapPost("/jobs/{id}/cancel", (string id, HttpContext c) => ApiCall.A1111(c, () => Cancel(server, id)));
        app.MapGet("/jobs/{id}/events", (string id, HttpContext c) => ApiCall.A1111(c, () => Events(c, server, id)));
        app.MapGet("/workers", (HttpContext c) => ApiCall.A1111(c, async () => new JsonResult(200, await WorkersAsync(server))));
    }

    /// <summary>Who generates: with a Redis queue every live worker (model, current job) and each model's waiting jobs;
    /// in one process the process itself.</summary>
    static async Task<JsonObject> WorkersAsync(ServerContext server)
    {
        if (server.Gateway is { } gateway) return await gateway.StatusAsync();
        var model = server.CurrentModel!;
        return new JsonObject
        {
            ["queue"] = "in-process",
            ["workers"] = new JsonArray(new JsonObject
            {
                ["name"] = "local",
                ["model"] = model.Name,
                ["title"] = model.Title(server.HashOf(model)),
                ["hash"] = server.HashOf(model),
                ["job"] = (await server.Queue.RunningJobsAsync()).FirstOrDefault()?.Id,
                ["host"] = Environment.MachineName,
                ["pid"] = Environment.ProcessId,
                ["threads"] = server.Options.Threads ?? Environment.ProcessorCount,
            }),
            ["waiting"] = new JsonObject { [model.Name] = await server.Queue.WaitingAsync() },
        };
    }

    static async Task<Job> FindAsync(ServerContext server, string id) =>
        await server.Queue.FindAsync(id) ?? throw new KeyNotFoundException($"No job '{id}' (finished jobs are kept for {server.Options.JobRetention.TotalMinutes:0} minutes).");

    static async Task<IResult> Cancel(ServerContext server, string id)
    {
        var job = await FindAsync(server, id);
        await server.Queue.CancelAsync(job, "cancelled by a client");
        return new JsonResult(200, job.Describe(null, withResult: false));
    }

    /// <summary>"event: progress" whenever the job changes (with "preview": a data: URL when a new one exists), then one
    /// "event: done" with the result, and the stream ends. A comment every 15 s keeps proxies from closing it.</summary>
    static async Task<IResult> Events(HttpContext context, ServerContext server, string id)
    {
        var job = await FindAsync(server, id);
        var response = context.Response;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        int sent = -1, previewSent = 0;
        var idle = System.Diagnostics.Stopwatch.StartNew();
        var token = context.RequestAborted;
        while (!token.IsCancellationRequested)
        {
            bool finished = job.IsFinished;
            if (job.Version != sent || finished)
            {
                sent = job.Version;
                var state = job.Describe(await server.Queue.PositionOfAsync(job), withResult: finished);
                if (job.PreviewVersion != previewSent && job.Preview is { } png)
                {
                    previewSent = job.PreviewVersion;
                    state["preview"] = "data:image/png;base64," + Convert.ToBase64String(png);
                }
                await response.WriteAsync($"event: {(finished ? "done" : "progress")}\ndata: {state.ToJsonString()}\n\n", token);
                await response.Body.FlushAsync(token);
                idle.Restart();
                if (finished) break;
            }
            else if (idle.Elapsed > TimeSpan.FromSeconds(15))
            {
                await response.WriteAsync(": keep-alive\n\n", token);
                await response.Body.FlushAsync(token);
                idle.Restart();
            }
            try { await Task.Delay(100, token); } catch (OperationCanceledException) { break; }
        }
        return Results.Empty;
    }
}
