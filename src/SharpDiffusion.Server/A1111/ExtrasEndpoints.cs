using System.Net;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using SharpDiffusion.Imaging;
using SharpDiffusion.Models.Upscalers;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Server.Hosting;
using SharpDiffusion.Server.Jobs;

namespace SharpDiffusion.Server.A1111;

/// <summary>
/// AUTOMATIC1111's Extras routes (modules/api/api.py): <c>GET /sdapi/v1/upscalers</c> (None, Lanczos, Nearest and the
/// models of <c>serve --upscaler-dir</c>, named by file stem), <c>GET /sdapi/v1/latent-upscale-modes</c>, and
/// <c>POST /sdapi/v1/extra-single-image</c> / <c>extra-batch-images</c> (<see cref="ExtrasUpscale"/>), run as jobs of
/// the queue like every generation. Face restoration is not done: its fields are accepted at 0 and refused otherwise.
/// </summary>
public static class ExtrasEndpoints
{
    public static void Map(WebApplication app, ServerContext server)
    {
        // A gateway of a Redis queue lists its workers' models (`worker --upscaler-dir`).
        app.MapGet("/sdapi/v1/upscalers", () => new JsonResult(200, Upscalers(server.Gateway?.Upscalers ?? UpscalerModels.List(server.Options.UpscalerDir))));
        app.MapGet("/sdapi/v1/latent-upscale-modes", () => new JsonResult(200,
            new JsonArray(HiresFixOptions.LatentUpscalers.Keys.Select(k => (JsonNode?)new JsonObject { ["name"] = k }).ToArray())));
        app.MapPost("/sdapi/v1/extra-single-image", (HttpContext c) => ApiCall.A1111(c, () => Extras(c, server, batch: false)));
        app.MapPost("/sdapi/v1/extra-batch-images", (HttpContext c) => ApiCall.A1111(c, () => Extras(c, server, batch: true)));
    }

    /// <summary>A1111's UpscalerItem list: name, model_name (the upscaler class's, "ESRGAN" for model files), model_path,
    /// model_url, scale (A1111 reports 4 for every entry: UpscalerData's default).</summary>
    static JsonArray Upscalers(IReadOnlyList<(string Name, string Path)> models)
    {
        var items = ExtrasUpscale.BuiltIn.Select(name => new JsonObject
        {
            ["name"] = name, ["model_name"] = null, ["model_path"] = null, ["model_url"] = null, ["scale"] = 4,
        }).Concat(models.Select(m => new JsonObject
        {
            ["name"] = m.Name, ["model_name"] = "ESRGAN", ["model_path"] = m.Path, ["model_url"] = null, ["scale"] = 4,
        }));
        return new JsonArray(items.Select(i => (JsonNode?)i).ToArray());
    }

    /// <summary>The request (A1111's ExtrasBaseRequest fields) checked at once; the upscale runs as a queued job (on a
    /// gateway of a Redis queue, on a worker that has the upscaler models named).</summary>
    static async Task<IResult> Extras(HttpContext context, ServerContext server, bool batch)
    {
        var body = await ServerContext.ReadObjectAsync(context);
        int maxSide = server.Options.MaxImageSide;
        if (server.Gateway is { } gateway)
        {
            var served = gateway.Upscalers;
            var named = new List<string>();
            foreach (var field in new[] { "upscaler_1", "upscaler_2" })
                if (body[field] is JsonValue v && v.TryGetValue(out string? name) && !ExtrasUpscale.BuiltIn.Contains(name, StringComparer.OrdinalIgnoreCase))
                {
                    if (!served.Any(u => string.Equals(u.Name, name, StringComparison.OrdinalIgnoreCase)))
                        return ApiErrors.A1111(422, "ExtrasError", $"{field}: could not find upscaler named '{name}'; the workers have: "
                            + string.Join(", ", ExtrasUpscale.BuiltIn.Concat(served.Select(u => u.Name))) + " (a worker's models are those of its --upscaler-dir).");
                    named.Add(name);
                }
            // Checked here as a built-in (the sizes the same); the worker reads the request again with its own folder.
            var probe = (JsonObject)body.DeepClone();
            foreach (var field in new[] { "upscaler_1", "upscaler_2" })
                if (probe[field] is JsonValue v && v.TryGetValue(out string? name) && named.Contains(name)) probe[field] = "Lanczos";
            var (_, _, refused) = Read(probe, maxSide, null, batch);
            if (refused is not null) return ApiErrors.A1111(422, "ExtrasError", refused);
            var model = gateway.ModelWithUpscalers(named, server.CurrentModel?.Name);
            if (model is null && gateway.Workers.Count > 0)
                return ApiErrors.A1111(422, "ExtrasError", $"No single worker has the upscalers {string.Join(" and ", named)}; give one worker an --upscaler-dir holding both.");
            var payload = new JsonObject { ["task"] = "extras", ["body"] = body.DeepClone(), ["batch"] = batch };
            var queued = await server.SubmitToWorkersAsync(ServerContext.NewJobId(), payload, "extras", model);
            return await AnswerAsync(context, server, queued);
        }
        var (upscale, pictures, error) = Read(body, maxSide, server.Options.UpscalerDir, batch);
        if (error is not null) return ApiErrors.A1111(422, "ExtrasError", error);
        var job = server.LocalQueue!.Enqueue(new Job(ServerContext.NewJobId(), "extras", job => Run(job, upscale!, pictures!, maxSide, batch)));
        return await AnswerAsync(context, server, job);
    }

    static async Task<IResult> AnswerAsync(HttpContext context, ServerContext server, Job job)
    {
        await server.WaitAsync(job, context.RequestAborted);
        var outcome = ApiCall.A1111Outcome(job);
        job.ReleaseResult();
        return outcome;
    }

    /// <summary>A Redis worker's extras job: the request read again with this worker's upscaler folder, then run.</summary>
    public static JsonObject RunQueued(Job job, JsonObject body, bool batch, int maxSide, string? upscalerDir)
    {
        var (upscale, pictures, error) = Read(body, maxSide, upscalerDir, batch);
        if (error is not null)
            throw new ArgumentException($"{error} (on worker with --upscaler-dir {upscalerDir ?? "not set"}: give every worker the same folder)");
        return Run(job, upscale!, pictures!, maxSide, batch);
    }

    /// <summary>The request read and checked: the upscale and the decoded pictures (with their PNG text), or why the
    /// upscale is refused (a 422; a field's error is thrown as the request reader does).</summary>
    static (ExtrasUpscale? Upscale, List<(RgbImage Picture, Dictionary<string, string> Text)>? Pictures, string? Refused) Read(
        JsonObject body, int maxSide, string? upscalerDir, bool batch)
    {
        var r = new RequestReader(body);
        var upscale = new ExtrasUpscale
        {
            ResizeMode = r.Int("resize_mode", 0, 0, 1),
            Factor = r.Double("upscaling_resize", 2, 0, 8),
            Width = r.Int("upscaling_resize_w", 512, 1, maxSide),
            Height = r.Int("upscaling_resize_h", 512, 1, maxSide),
            Crop = r.Bool("upscaling_crop", true),
            Upscaler1 = r.String("upscaler_1") ?? "None",
            Upscaler2 = r.String("upscaler_2") ?? "None",
            Upscaler2Visibility = r.Double("extras_upscaler_2_visibility", 0, 0, 1),
            UpscalerDirectory = upscalerDir,
        };
        foreach (var field in new[] { "gfpgan_visibility", "codeformer_visibility" })
            if (r.Double(field, 0, 0, 1) > 0) r.Error(field, "face restoration is not supported by this server; send 0");
        var inputs = new List<(string Name, byte[] Bytes)>();
        if (batch)
        {
            var list = r.Body["imageList"] as JsonArray;
            if (list is null || list.Count == 0) r.Error("imageList", "send at least one {data, name} image");
            else
                for (int i = 0; i < list.Count; i++)
                {
                    if (list[i] is JsonObject item && item["data"] is JsonValue v && v.TryGetValue(out string? data))
                        inputs.Add((item["name"] is JsonValue n && n.TryGetValue(out string? name) ? name : $"image{i}", Base64Images.Bytes(data, $"imageList[{i}].data")));
                    else r.Error($"imageList[{i}]", "each item must be {\"data\": base64 image, \"name\": file name}");
                }
        }
        else if (r.String("image") is { Length: > 0 } image) inputs.Add(("image", Base64Images.Bytes(image, "image")));
        else r.Error("image", "field required", "value_error.missing");
        r.ThrowIfInvalid();
        try { upscale.Validate(maxSide); }
        catch (ArgumentException e) { return (null, null, e.Message); }
        var pictures = inputs.Select((input, i) =>
        {
            string field = batch ? $"imageList[{i}].data" : "image";
            if (ImageFile.ReadSize(input.Bytes) is var (w, h) && (w > maxSide || h > maxSide))
                throw new ImageTooLargeException($"{field}: the image is {w}x{h}; at most {maxSide} pixels on a side are accepted.");
            return (Picture: ImageFile.Decode(input.Bytes, field), Text: IsPng(input.Bytes) ? PngFile.ReadText(input.Bytes) : []);
        }).ToList();
        return (upscale, pictures, null);
    }

    /// <summary>On the worker: each picture upscaled, as a PNG keeping its text chunks (its "parameters") with A1111's
    /// "postprocessing" infotext added; html_info is the last picture's infotext as A1111's plaintext_to_html writes it.</summary>
    static JsonObject Run(Job job, ExtrasUpscale upscale, List<(RgbImage Picture, Dictionary<string, string> Text)> pictures, int maxSide, bool batch)
    {
        job.Report(new JobProgress(0, 1, 0, 1, "upscaling"));
        var results = upscale.Run(pictures.Select(p => p.Picture).ToList(), maxSide, job.Cancellation);
        var images = new JsonArray();
        for (int i = 0; i < results.Count; i++)
        {
            var (result, infotext) = results[i];
            var chunks = new Dictionary<string, string>(pictures[i].Text);
            if (infotext.Length > 0) chunks["postprocessing"] = infotext;
            images.Add(Convert.ToBase64String(PngFile.Encode(result.Width, result.Height, result.Rgb, chunks)));
        }
        string info = results.Count > 0 ? results[^1].Info : "";
        string html = "<p>" + string.Join("<br>\n", info.Split('\n').Select(l => WebUtility.HtmlEncode(l))) + "</p>";
        return batch
            ? new JsonObject { ["html_info"] = html, ["images"] = images }
            : new JsonObject { ["html_info"] = html, ["image"] = images[0]!.DeepClone() };
    }

    static bool IsPng(byte[] bytes) => bytes.AsSpan().StartsWith(new byte[] { 137, 80, 78, 71 });
}
