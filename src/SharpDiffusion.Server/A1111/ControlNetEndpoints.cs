using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using SharpDiffusion.Imaging;
using SharpDiffusion.Imaging.ControlPreprocessors;
using SharpDiffusion.Server.Hosting;

namespace SharpDiffusion.Server.A1111;

/// <summary>
/// sd-webui-controlnet's API (its scripts/api.py): <c>GET /controlnet/model_list</c> (the ControlNets of
/// <c>--controlnet-dir</c>), <c>GET /controlnet/module_list</c> and
/// <c>POST /controlnet/detect</c> with the extension's field names, defaults and answers, for the preprocessors of
/// <see cref="ControlPreprocessor.All"/>. A model-based annotator (openpose, depth_midas, ...) is refused with 422 and a
/// one-line reason; an unknown module with the extension's "Module not available".
/// </summary>
public static class ControlNetEndpoints
{
    public static void Map(WebApplication app, ServerContext server)
    {
        app.MapGet("/controlnet/model_list", (HttpContext c) => ApiCall.A1111(c, () => Task.FromResult(ModelList(server))));
        app.MapGet("/controlnet/module_list", (HttpContext c) => ApiCall.A1111(c, () => Task.FromResult(ModuleList(c))));
        app.MapPost("/controlnet/detect", (HttpContext c) => ApiCall.A1111(c, () => Detect(c, server)));
    }

    /// <summary>{model_list: ["name [hash]", ...]}: the ControlNets of --controlnet-dir (<see cref="ControlNetModels"/>); on a
    /// gateway (serve --queue), those its workers announce.</summary>
    static IResult ModelList(ServerContext server) => new JsonResult(200, new JsonObject
    {
        ["model_list"] = new JsonArray((server.Gateway?.ControlNets(null) ?? ControlNetModels.List(server.Options.ControlNetDir).Select(m => m.Title))
            .Select(title => (JsonNode?)title).ToArray()),
    });

    /// <summary>{module_list: [names], module_detail: {name: {model_free, sliders: [{name, value, min, max, step}]}}};
    /// <c>?alias_names=true</c> gives the UI labels instead of the names.</summary>
    static IResult ModuleList(HttpContext context)
    {
        bool aliases = string.Equals(context.Request.Query["alias_names"], "true", StringComparison.OrdinalIgnoreCase);
        string Key(ControlPreprocessor p) => aliases ? p.Label : p.Name;
        var detail = new JsonObject();
        foreach (var p in ControlPreprocessor.All)
            detail[Key(p)] = new JsonObject
            {
                // The extension's model_free means "needs no ControlNet model" (reference_only, ...); false for these four.
                ["model_free"] = false,
                ["sliders"] = new JsonArray(new[] { p.Resolution, p.ThresholdA, p.ThresholdB }.OfType<PreprocessorParameter>()
                    .Select(s => (JsonNode?)new JsonObject { ["name"] = s.Label, ["value"] = s.Value, ["min"] = s.Minimum, ["max"] = s.Maximum, ["step"] = s.Step })
                    .ToArray()),
            };
        var list = new JsonArray(ControlPreprocessor.All.Select(p => (JsonNode?)Key(p)).ToArray());
        return new JsonResult(200, new JsonObject { ["module_list"] = list, ["module_detail"] = detail });
    }

    /// <summary>Each of <c>controlnet_input_images</c> through <c>controlnet_module</c>: {images: [base64 PNG], info: "Success"}.
    /// Resolution and thresholds outside their sliders' ranges (default -1) mean the sliders' defaults, as the extension.</summary>
    static async Task<IResult> Detect(HttpContext context, ServerContext server)
    {
        var r = new RequestReader(await ServerContext.ReadObjectAsync(context));
        string moduleName = r.String("controlnet_module", "none") ?? "none";
        var inputs = r.Strings("controlnet_input_images") ?? [];
        int resolution = r.Int("controlnet_processor_res", -1);
        double a = r.Double("controlnet_threshold_a", -1), b = r.Double("controlnet_threshold_b", -1);
        r.ThrowIfInvalid();

        ControlPreprocessor module;
        try { module = ControlPreprocessor.Get(moduleName); }
        catch (NotSupportedException e) { return ApiErrors.A1111(422, "HTTPException", e.Message); }
        catch (ArgumentException) { return ApiErrors.A1111(422, "HTTPException", "Module not available"); }
        if (inputs.Count == 0)
            return ApiErrors.A1111(422, "HTTPException", "No image selected");

        var pictures = inputs.Select((text, i) => Base64Images.Decode(text, $"controlnet_input_images[{i}]", server.Options.MaxImageSide)).ToList();
        var maps = await Task.Run(() => pictures.Select(p => module.Run(p, resolution, a, b)).ToList(), context.RequestAborted);
        var images = new JsonArray(maps.Select(m => (JsonNode?)Convert.ToBase64String(PngFile.Encode(m.Width, m.Height, m.Rgb))).ToArray());
        return new JsonResult(200, new JsonObject { ["info"] = "Success", ["images"] = images });
    }
}
