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
        app.MapGet("/sdapi/v1/upscalers", () => new JsonResult(200, Upscalers(server.Options.UpscalerDir)));
        app.MapGet("/sdapi/v1/latent-upscale-modes", () => new JsonResult(200,
            new JsonArray(HiresFixOptions.LatentUpscalers.Keys.Select(k => (JsonNode?)new JsonObject { ["name"] = k }).ToArray())));
        app.MapPost("/sdapi/v1/extra-single-image", (HttpContext c) => ApiCall.A1111(c, () => Extras(c, server, batch: false)));
        app.MapPost("/sdapi/v1/extra-batch-images", (HttpContext c) => ApiCall.A1111(c, () => Extras(c, server, batch: true)));
    }

    /// <summary>A1111's UpscalerItem list: name, model_name (the upscaler class's, "ESRGAN" for model files), model_path,
    /// model_url, scale (A1111 reports 4 for every entry: UpscalerData's default).</summary>
    static JsonArray Upscalers(string? directory)
    {
        var items = ExtrasUpscale.BuiltIn.Select(name => new JsonObject
        {
            ["name"] = name, ["model_name"] = null, ["model_path"] = null, ["model_url"] = null, ["scale"] = 4,
        }).Concat(UpscalerModels.List(directory).Select(m => new JsonObject
        {
            ["name"] = m.Name, ["model_name"] = "ESRGAN", ["model_path"] = m.Path, ["model_url"] = null, ["scale"] = 4,
        }));
        return new JsonArray(items.Select(i => (JsonNode?)i).ToArray());
    }

    /// <summary>The request (A1111's ExtrasBaseRequest fields) checked at once; the upscale runs as a queued job.</summary>
    static async Task<IResult> Extras(HttpContext context, ServerContext server, bool batch)
    {
        var r = new RequestReader(await ServerContext.ReadObjectAsync(context));
        int maxSide = server.Options.MaxImageSide;
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
            UpscalerDirectory = server.Options.UpscalerDir,
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
        catch (ArgumentException e) { return ApiErrors.A1111(422, "ExtrasError", e.Message); }
        var pictures = inputs.Select((input, i) =>
        {
            string field = batch ? $"imageList[{i}].data" : "image";
            if (ImageFile.ReadSize(input.Bytes) is var (w, h) && (w > maxSide || h > maxSide))
                throw new ImageTooLargeException($"{field}: the image is {w}x{h}; at most {maxSide} pixels on a side are accepted.");
            return (Picture: ImageFile.Decode(input.Bytes, field), Text: IsPng(input.Bytes) ? PngFile.ReadText(input.Bytes) : []);
        }).ToList();

        if (server.LocalQueue is null)
            return ApiErrors.A1111(501, "NotImplemented", "The Extras upscale runs on one `serve` process; this gateway of a Redis queue does not run it (start `serve --upscaler-dir DIR` without --queue).");
        var job = server.LocalQueue.Enqueue(new Job(ServerContext.NewJobId(), "extras", job => Run(job, upscale, pictures, maxSide, batch)));
        await server.WaitAsync(job, context.RequestAborted);
        var outcome = ApiCall.A1111Outcome(job);
        job.ReleaseResult();
        return outcome;
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
