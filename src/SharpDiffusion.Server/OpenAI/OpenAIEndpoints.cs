using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using SharpDiffusion.Server.A1111;
using SharpDiffusion.Server.Hosting;
using SharpDiffusion.Server.Jobs;

namespace SharpDiffusion.Server.OpenAI;

/// <summary>
/// OpenAI's Images API: POST /v1/images/generations (prompt, n, size "WxH", response_format b64_json or url, model)
/// and GET /v1/models, with OpenAI's response and error shapes. Extra fields this server understands: negative_prompt,
/// seed, steps, cfg_scale, sampler_name. "url" results are served for an hour from <see cref="ServerContext.Files"/>
/// (memory; with a Redis queue, Redis, so any gateway serves them); nothing is written to disk.
/// </summary>
public sealed class OpenAIEndpoints(ServerContext server)
{
    const int MaxN = 10;

    public void Map(WebApplication app)
    {
        app.MapPost("/v1/images/generations", (HttpContext c) => ApiCall.OpenAI(c, () => Generate(c)));
        app.MapGet("/v1/images/files/{name}", (string name, HttpContext c) => ApiCall.OpenAI(c, () => Task.FromResult(
            server.Files.Get(name) is { } png
                ? Results.Bytes(png, "image/png")
                : ApiErrors.OpenAI(404, $"No image '{name}' (images are kept for an hour).", "invalid_request_error"))));
        app.MapGet("/v1/models", () => new JsonResult(200, new JsonObject
        {
            ["object"] = "list",
            ["data"] = new JsonArray(server.Catalog.Entries.Select(e => (JsonNode?)new JsonObject
            {
                ["id"] = e.Name,
                ["object"] = "model",
                ["created"] = 0,
                ["owned_by"] = "sharpdiffusion",
            }).ToArray()),
        }));
    }

    async Task<IResult> Generate(HttpContext context)
    {
        var body = await ServerContext.ReadObjectAsync(context);
        var r = new RequestReader(body);
        string? prompt = r.String("prompt");
        if (string.IsNullOrWhiteSpace(prompt) && body["prompt"] is null or JsonValue)
            r.Error("prompt", "prompt is required");
        int n = r.Int("n", 1, 1, MaxN);
        string size = r.String("size") ?? "auto";
        string format = r.String("response_format") ?? "b64_json";
        if (format is not ("b64_json" or "url"))
            r.Error("response_format", $"'{format}' is not one of b64_json, url");
        string? model = r.String("model");
        r.ThrowIfInvalid();

        // The same request as AUTOMATIC1111's txt2img, so both APIs draw the same images for the same settings.
        var a1111 = new JsonObject { ["prompt"] = prompt, ["batch_size"] = n };
        foreach (var key in new[] { "negative_prompt", "seed", "steps", "cfg_scale", "distilled_cfg_scale", "sampler_name" })
            if (body[key] is { } v) a1111[key] = v.DeepClone();
        if (size != "auto")
        {
            var parts = size.Split('x');
            if (parts.Length != 2 || !int.TryParse(parts[0], out int w) || !int.TryParse(parts[1], out int h))
                throw new RequestValidationException([new FieldError("size", $"'{size}' is not WIDTHxHEIGHT (e.g. 512x512) or auto", "value_error")]);
            (a1111["width"], a1111["height"]) = (w, h);
        }
        if (model is not null && server.Catalog.Find(model) is { } entry)
            a1111["override_settings"] = new JsonObject { ["sd_model_checkpoint"] = entry.Name };
        GenerationRequest request;
        try { request = await server.ParseRequestAsync(a1111, "txt2img"); }
        catch (RequestValidationException e)
        {
            // width and height are not OpenAI fields: the client sent "size", so the error names it.
            throw new RequestValidationException(e.Errors.Select(x => x.Field is "width" or "height"
                ? x with { Field = "size", Message = $"'{size}': {x.Field} {x.Message}" } : x).ToList());
        }
        var job = await server.SubmitAsync(request, "openai");
        await server.WaitAsync(job, context.RequestAborted);
        if (job.State == JobState.Failed)
            return ApiErrors.OpenAI(job.ErrorStatus == 422 ? 400 : 500, job.Error ?? "failed", job.ErrorStatus == 422 ? "invalid_request_error" : "server_error");
        if (job.State != JobState.Completed)
            return ApiErrors.OpenAI(409, $"The request was cancelled ({job.Error}).", "invalid_request_error", code: "cancelled");

        var data = new JsonArray();
        foreach (var image in job.Result!["images"]!.AsArray())
        {
            string b64 = image!.GetValue<string>();
            if (format == "b64_json")
                data.Add(new JsonObject { ["b64_json"] = b64, ["revised_prompt"] = prompt });
            else
            {
                string name = server.Files.Add(Convert.FromBase64String(b64));
                var url = $"{context.Request.Scheme}://{context.Request.Host}/v1/images/files/{name}";
                data.Add(new JsonObject { ["url"] = url, ["revised_prompt"] = prompt });
            }
        }
        job.ReleaseResult(); // delivered: not kept for GET /jobs/{id}
        return new JsonResult(200, new JsonObject { ["created"] = DateTimeOffset.UtcNow.ToUnixTimeSeconds(), ["data"] = data });
    }
}
