using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using SharpDiffusion.Imaging;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Server.Hosting;
using SharpDiffusion.Server.Jobs;

namespace SharpDiffusion.Server.A1111;

/// <summary>AUTOMATIC1111's /sdapi/v1 routes (modules/api/api.py), with its field names and response shapes.</summary>
public static class A1111Endpoints
{
    public static void Map(WebApplication app, ServerContext server)
    {
        app.MapPost("/sdapi/v1/txt2img", (HttpContext c) => ApiCall.A1111(c, () => Generate(c, server, "txt2img")));
        app.MapPost("/sdapi/v1/img2img", (HttpContext c) => ApiCall.A1111(c, () => Generate(c, server, "img2img")));
        app.MapGet("/sdapi/v1/progress", (HttpContext c) => ApiCall.A1111(c, () => ProgressAsync(c, server)));
        app.MapPost("/sdapi/v1/interrupt", (HttpContext c) => ApiCall.A1111(c, async () =>
        {
            await server.Queue.InterruptAsync();
            return new JsonResult(200, new JsonObject());
        }));
        app.MapPost("/sdapi/v1/skip", (HttpContext c) => ApiCall.A1111(c, async () =>
        {
            await server.Queue.SkipAsync();
            return new JsonResult(200, new JsonObject());
        }));
        app.MapGet("/sdapi/v1/samplers", () => Json(new JsonArray(SamplerNames.Samplers.Select(s => (JsonNode?)new JsonObject
        {
            ["name"] = s.Name,
            ["aliases"] = new JsonArray(s.Aliases.Select(a => (JsonNode?)JsonValue.Create(a)).ToArray()),
            ["options"] = new JsonObject(),
        }).ToArray())));
        app.MapGet("/sdapi/v1/schedulers", () => Json(new JsonArray(SamplerNames.Schedules.Select(s => (JsonNode?)new JsonObject
        {
            ["name"] = s.Name,
            ["label"] = s.Label,
            ["aliases"] = null,
            ["default_rho"] = -1,
            ["need_inner_model"] = false,
        }).ToArray())));
        app.MapGet("/sdapi/v1/sd-models", () => Json(new JsonArray(server.Catalog.Entries.Select(e =>
        {
            string? hash = server.HashOf(e);
            return (JsonNode?)new JsonObject
            {
                ["title"] = e.Title(hash),
                ["model_name"] = e.Name,
                ["hash"] = hash,
                ["sha256"] = null,
                ["filename"] = e.FileName,
                ["config"] = null,
                // Extensions (A1111 clients ignore them): what the page needs to show this model's fields.
                ["family"] = e.Traits?.Family,
                ["prompts"] = e.Traits is { } t ? Strings(t.PromptFields) : null,
                ["guidance"] = e.Traits?.Guidance, // "cfg", "distilled" (Flux dev: Distilled CFG Scale) or "none" (Flux schnell)
                ["samplers"] = e.Traits is { } s ? Strings(s.FlowMatching ? [SamplerNames.FlowSampler] : SamplerNames.Samplers.Select(x => x.Name)) : null,
                ["schedulers"] = e.Traits is { } u ? Strings((u.FlowMatching ? SamplerNames.FlowSchedules : SamplerNames.Schedules).Select(x => x.Name)) : null,
            };
        }).ToArray())));
        app.MapPost("/sdapi/v1/refresh-checkpoints", () =>
        {
            server.Catalog.Refresh();
            return Json(new JsonObject());
        });
        app.MapGet("/sdapi/v1/loras", () => Json(new JsonArray(server.Loras.Entries().Select(l => (JsonNode?)new JsonObject
        {
            ["name"] = l.Name,
            ["alias"] = l.Name,
            ["path"] = Path.GetFileName(l.Path),
            ["metadata"] = new JsonObject(),
        }).ToArray())));
        app.MapPost("/sdapi/v1/refresh-loras", () => Json(new JsonObject()));
        app.MapGet("/sdapi/v1/embeddings", () =>
        {
            var loaded = new JsonObject();
            foreach (var token in server.Embeddings)
                loaded[token] = new JsonObject { ["step"] = null, ["sd_checkpoint"] = null, ["sd_checkpoint_name"] = null, ["shape"] = 0, ["vectors"] = 1 };
            return Json(new JsonObject { ["loaded"] = loaded, ["skipped"] = new JsonObject() });
        });
        app.MapGet("/sdapi/v1/memory", () => Json(Memory()));
        app.MapGet("/sdapi/v1/options", (HttpContext c) => ApiCall.A1111(c, async () => Json(await OptionsAsync(server))));
        app.MapPost("/sdapi/v1/options", (HttpContext c) => ApiCall.A1111(c, () => SetOptions(c, server)));
        app.MapPost("/sdapi/v1/png-info", (HttpContext c) => ApiCall.A1111(c, () => PngInfo(c)));
        // Lists some clients read at start; this server has none of these, and one script (XyzPlotScript).
        app.MapGet("/sdapi/v1/sd-vae", () => Json(new JsonArray(server.Vaes.Entries().Select(v => (JsonNode?)new JsonObject
        {
            ["model_name"] = v.Name,
            ["filename"] = v.Path,
        }).ToArray())));
        app.MapPost("/sdapi/v1/refresh-vae", () => Json(new JsonObject())); // the folder is read on every request
        foreach (var empty in new[] { "hypernetworks", "face-restorers", "realesrgan-models", "prompt-styles", "scripts" })
            app.MapGet($"/sdapi/v1/{empty}", () => Json(empty == "scripts"
                ? new JsonObject { ["txt2img"] = new JsonArray("x/y/z plot"), ["img2img"] = new JsonArray("x/y/z plot") }
                : new JsonArray()));
        app.MapGet("/sdapi/v1/cmd-flags", () => Json(new JsonObject
        {
            ["api"] = true,
            ["listen"] = server.Options.Host != "127.0.0.1",
            ["port"] = server.Options.Port,
            ["ckpt_dir"] = null,
            ["lora_dir"] = server.Options.LoraDir,
        }));
    }

    static IResult Json(JsonNode node) => new JsonResult(200, node);

    static JsonArray Strings(IEnumerable<string> items) => new(items.Select(i => (JsonNode?)JsonValue.Create(i)).ToArray());

    static async Task<IResult> Generate(HttpContext context, ServerContext server, string task)
    {
        var body = await ServerContext.ReadObjectAsync(context);
        if (XyzPlotScript.Applies(body))
            return await XyzPlotScript.RunAsync(context, server, body, task);
        var request = await server.ParseRequestAsync(body, task);
        var job = await server.SubmitAsync(request, task);
        await server.WaitAsync(job, context.RequestAborted);
        var outcome = ApiCall.A1111Outcome(job);
        job.ReleaseResult(); // the answer holds it now
        return outcome;
    }

    static async Task<IResult> ProgressAsync(HttpContext context, ServerContext server)
    {
        bool skipImage = string.Equals(context.Request.Query["skip_current_image"], "true", StringComparison.OrdinalIgnoreCase);
        var running = await server.Queue.RunningJobsAsync();
        var job = running.FirstOrDefault();
        var d = job?.Describe(0, withResult: false);
        var p = job?.Progress;
        var state = new JsonObject
        {
            ["skipped"] = false,
            ["interrupted"] = job?.Cancellation.IsCancellationRequested ?? false,
            ["stopping_generation"] = false,
            ["job"] = job?.Id ?? "",
            ["job_count"] = job is null ? 0 : p!.ImageCount,
            ["job_timestamp"] = job?.Created.UtcDateTime.ToString("yyyyMMddHHmmss") ?? "0",
            ["job_no"] = p?.ImageIndex ?? 0,
            ["sampling_step"] = p?.Step ?? 0,
            ["sampling_steps"] = p?.Steps ?? 0,
            ["queued"] = await server.Queue.WaitingAsync(),
        };
        byte[]? preview = skipImage ? null : job?.Preview;
        return Json(new JsonObject
        {
            ["progress"] = d?["progress"]?.GetValue<double>() ?? 0,
            ["eta_relative"] = d?["eta_relative"]?.GetValue<double>() ?? 0,
            ["state"] = state,
            ["current_image"] = preview is null ? null : Convert.ToBase64String(preview),
            ["textinfo"] = job is null ? null : $"Image {p!.ImageIndex + 1}/{p.ImageCount}, step {p.Step}/{p.Steps} ({p.Stage})",
            ["current_task"] = job?.Id,
            // With several workers (a Redis queue) more than one job runs; A1111's fields show the first.
            ["running"] = new JsonArray(running.Select(j => (JsonNode?)j.Describe(0, withResult: false)).ToArray()),
        });
    }

    static JsonObject Memory()
    {
        var gc = GC.GetGCMemoryInfo();
        long total = gc.TotalAvailableMemoryBytes;
        long free = MemoryEstimate.AvailableBytes() ?? Math.Max(0, total - Environment.WorkingSet);
        return new JsonObject
        {
            ["ram"] = new JsonObject { ["free"] = free, ["used"] = total - free, ["total"] = total, ["process_rss"] = Environment.WorkingSet },
            ["cuda"] = new JsonObject { ["error"] = "CUDA is not used: this server runs on the CPU." },
        };
    }

    static async Task<JsonObject> OptionsAsync(ServerContext server)
    {
        await server.SyncSettingsAsync();
        var o = server.Settings.Snapshot();
        var current = server.CurrentModel;
        o["sd_model_checkpoint"] = current is null ? null : current.Title(server.HashOf(current));
        o["sd_checkpoint_hash"] = current is null ? null : server.HashOf(current);
        return o;
    }

    /// <summary>Sets options; "sd_model_checkpoint" switches the model, as a job in the queue (it waits for the jobs before it).</summary>
    static async Task<IResult> SetOptions(HttpContext context, ServerContext server)
    {
        var body = await ServerContext.ReadObjectAsync(context);
        if (body["sd_vae"] is { } sdVae) // a name the VAE folder has, or Automatic/None: refused before anything is stored
            server.Vaes.Resolve(sdVae is JsonValue sv && sv.TryGetValue(out string? vaeName) ? vaeName
                : throw new RequestValidationException([new FieldError("sd_vae", "str type expected", "type_error.str")]));
        var checkpoint = body["sd_model_checkpoint"];
        if (checkpoint is not null)
        {
            string name = checkpoint is JsonValue v && v.TryGetValue(out string? s) ? s
                : throw new RequestValidationException([new FieldError("sd_model_checkpoint", "str type expected", "type_error.str")]);
            var entry = server.Catalog.Find(name)
                ?? throw new ArgumentException($"Model '{name}' not found; GET /sdapi/v1/sd-models lists the names.");
            server.SetSettings(body, entry); // checked before the switch is queued
            if (server.LocalQueue is null)
                return Json(new JsonObject()); // a gateway loads nothing: later requests go to that model's workers
            var host = server.Host!;
            var job = server.LocalQueue.Enqueue(new Job(ServerContext.NewJobId(), "options", _ =>
            {
                host.Use(entry);
                return new JsonObject();
            }));
            await server.WaitAsync(job, context.RequestAborted);
            if (job.State != JobState.Completed)
                return ApiErrors.A1111(job.ErrorStatus is 0 ? 409 : job.ErrorStatus, "ModelLoadError", job.Error ?? "cancelled");
        }
        else
            server.SetSettings(body);
        return Json(new JsonObject());
    }

    static async Task<IResult> PngInfo(HttpContext context)
    {
        var r = new RequestReader(await ServerContext.ReadObjectAsync(context));
        string image = r.String("image") ?? "";
        if (image.Trim().Length == 0) r.Error("image", "field required", "value_error.missing");
        r.ThrowIfInvalid();
        var bytes = Base64Images.Bytes(image, "image");
        var text = bytes.AsSpan().StartsWith(new byte[] { 137, 80, 78, 71 }) ? PngFile.ReadText(bytes) : new Dictionary<string, string>();
        text.Remove("parameters", out string? info);
        var items = new JsonObject();
        foreach (var (key, value) in text) items[key] = value;
        var parameters = new JsonObject();
        if (info is not null)
            foreach (var (key, value) in InfoText.Parse(info))
                parameters[key] = value;
        return Json(new JsonObject { ["info"] = info ?? "", ["items"] = items, ["parameters"] = parameters });
    }
}
