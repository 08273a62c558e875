using System.Text.Json.Nodes;
using SharpDiffusion.Imaging;
using SharpDiffusion.Imaging.ControlPreprocessors;
using SharpDiffusion.Pipelines;

namespace SharpDiffusion.Server.A1111;

/// <summary>
/// sd-webui-controlnet's units in a txt2img/img2img body (<c>alwayson_scripts.controlnet.args</c>, its ControlNetUnit
/// fields and defaults: enabled false, module "none", weight 1, guidance 0..1, resize_mode "Crop and Resize",
/// control_mode "Balanced") → <see cref="ControlNetUnit"/>s, each with the module's map made by
/// <see cref="ControlPreprocessor"/> and the extension's infotext. Disabled units are skipped. The model is named as
/// /controlnet/model_list gives it, with or without " [hash]", and must be in <c>--controlnet-dir</c> (on a gateway: announced by
/// a worker, which resolves it in its own folder; the gateway checks the rest of the unit). control_mode is the
/// extension's name or 0/1/2 (<see cref="Pipelines.ControlMode"/>). Not done (a one-line 422): resize_mode "Resize and Fill".
/// </summary>
public static class ControlNetUnits
{
    static readonly string[] ResizeModes = ["Just Resize", "Crop and Resize", "Resize and Fill"];
    // The extension's resize_mode_aliases (older names of the same modes).
    static readonly Dictionary<string, string> ResizeAliases = new()
    {
        ["Inner Fit (Scale to Fit)"] = "Crop and Resize", ["Scale to Fit (Inner Fit)"] = "Crop and Resize",
        ["Outer Fit (Shrink to Fit)"] = "Resize and Fill", ["Envelope (Outer Fit)"] = "Resize and Fill",
    };

    /// <param name="r">the body's reader: errors are added to it (the caller throws them as one 422).</param>
    /// <param name="width">the output size as far as it is known (pixel_perfect and the crop use it); else 512, A1111's default.</param>
    /// <param name="workerControlNets">a gateway's: the titles its workers announce, instead of a folder.</param>
    public static IReadOnlyList<ControlNetUnit> Parse(RequestReader r, string? controlNetDir, int maxSide, int? width, int? height,
        IReadOnlyList<string>? workerControlNets = null)
    {
        if (r.Object("alwayson_scripts") is not { } scripts || scripts["controlnet"] is not JsonObject controlnet
            || controlnet["args"] is not JsonArray args)
            return [];
        var units = new List<ControlNetUnit>();
        IReadOnlyList<(string Title, string Path)>? models = null;
        for (int i = 0; i < args.Count; i++)
        {
            string field = $"alwayson_scripts.controlnet.args[{i}]";
            if (args[i] is not JsonObject unitBody)
            {
                r.Error(field, "a ControlNet unit must be an object ({\"enabled\": true, \"image\": ..., \"module\": ..., \"model\": ...})");
                continue;
            }
            // On a gateway the "path" is the title: the unit is only checked here, the worker parses the body again.
            models ??= workerControlNets?.Select(t => (t, t)).ToList() ?? ControlNetModels.List(controlNetDir);
            bool any = controlNetDir is not null || workerControlNets is { Count: > 0 };
            string where = workerControlNets is null ? "--controlnet-dir; it has" : "any worker's --controlnet-dir; they have";
            if (Unit(new RequestReader(unitBody), r, field, models, any, where, maxSide, width ?? 512, height ?? 512) is { } unit)
                units.Add(unit);
        }
        return units;
    }

    static ControlNetUnit? Unit(RequestReader u, RequestReader r, string field, IReadOnlyList<(string Title, string Path)> models,
        bool any, string where, int maxSide, int width, int height)
    {
        if (!u.Bool("enabled", false)) return null; // the extension's default: a unit acts only when enabled
        string moduleName = u.String("module", "none") ?? "none";
        string modelName = u.String("model", "None") ?? "None";
        double weight = u.Double("weight", 1.0, 0, 2);
        double start = u.Double("guidance_start", 0, 0, 1), end = u.Double("guidance_end", 1, 0, 1);
        bool pixelPerfect = u.Bool("pixel_perfect", false);
        int resolution = u.Int("processor_res", -1);
        double a = u.Double("threshold_a", -1), b = u.Double("threshold_b", -1);
        string resizeMode = ResizeMode(u.Body["resize_mode"]) ?? "";
        var controlMode = ControlModeOf(u.Body["control_mode"]);
        string? imageText = ImageText(u.Body["image"] ?? u.Body["input_image"]);
        try { u.ThrowIfInvalid(); }
        catch (RequestValidationException e)
        {
            foreach (var err in e.Errors) r.Error($"{field}.{err.Field}", err.Message, err.Type);
            return null;
        }

        if (!ResizeModes.Contains(resizeMode))
            return Fail(r, $"{field}.resize_mode", $"'{u.Body["resize_mode"]}' is not a resize mode; use 0/\"Just Resize\", 1/\"Crop and Resize\" or 2/\"Resize and Fill\"");
        if (resizeMode == "Resize and Fill")
            return Fail(r, $"{field}.resize_mode", "\"Resize and Fill\" (2) is not supported by this server; use \"Just Resize\" (0) or \"Crop and Resize\" (1)");
        if (controlMode is not { } mode)
            return Fail(r, $"{field}.control_mode", $"'{u.Body["control_mode"]}' is not a control mode; use 0/\"Balanced\", " +
                "1/\"My prompt is more important\" or 2/\"ControlNet is more important\"");
        if (start >= end)
            return Fail(r, $"{field}.guidance_start", $"guidance_start {start} must be below guidance_end {end}");
        ControlPreprocessor module;
        try { module = ControlPreprocessor.Get(moduleName); }
        catch (Exception e) when (e is NotSupportedException or ArgumentException) { return Fail(r, $"{field}.module", e.Message); }
        if (!any)
            return Fail(r, $"{field}.model", $"'{modelName}': this server has no ControlNets; start it with serve --controlnet-dir DIR (workers: worker --controlnet-dir DIR)");
        if (ControlNetModels.Find(models, modelName) is not var (title, path))
            return Fail(r, $"{field}.model", $"'{modelName}' is not in {where} {(models.Count == 0 ? "none" : string.Join(", ", models.Select(m => m.Title)))}");
        if (imageText is null)
            return Fail(r, $"{field}.image", "the unit has no image: send \"image\" (or \"input_image\") as base64 PNG/JPEG/WebP");
        RgbImage picture;
        try { picture = Base64Images.Decode(imageText, $"{field}.image", maxSide); }
        catch (Exception e) when (e is ArgumentException or InvalidDataException) { return Fail(r, $"{field}.image", e.Message); }

        // pixel_perfect (the extension's pixel_perfect_resolution): the map's short side at the output's scale, the
        // larger factor for a crop, the smaller for a fit: round(max|min(H/h, W/w) · min(h, w)).
        if (pixelPerfect)
        {
            double k = Math.Max((double)height / picture.Height, (double)width / picture.Width);
            resolution = resizeMode == "Just Resize" ? (width + height) / 2 : (int)Math.Round(k * Math.Min(picture.Height, picture.Width));
        }
        var map = module.Run(picture, resolution, a, b);
        if (resizeMode == "Crop and Resize") map = CropToAspect(map, width, height);
        int res = (int)(module.Resolution?.OrDefault(resolution) ?? resolution);
        double ta = module.ThresholdA?.OrDefault(a) ?? a, tb = module.ThresholdB?.OrDefault(b) ?? b;
        return new ControlNetUnit
        {
            ModelPath = path,
            Image = map,
            Scale = weight,
            Start = start,
            End = end,
            ControlMode = mode,
            InfoText = ImageOutput.ControlNetInfo(module.Name, title, weight, resizeMode, res, ta, tb, start, end, pixelPerfect, mode.ExtensionName()),
        };
    }

    static ControlNetUnit? Fail(RequestReader r, string field, string message)
    {
        r.Error(field, message);
        return null;
    }

    /// <summary>"image" as base64, or the extension's {"image": base64, "mask": ...} form; null when absent.</summary>
    static string? ImageText(JsonNode? node) => node switch
    {
        JsonValue v when v.TryGetValue(out string? s) && !string.IsNullOrEmpty(s) => s,
        JsonObject o => ImageText(o["image"]),
        _ => null,
    };

    /// <summary>0/1/2 or a name (or an old alias) → the extension's ResizeMode value; null = not one of them.</summary>
    static string? ResizeMode(JsonNode? node) => node switch
    {
        null => "Crop and Resize",
        JsonValue v when v.TryGetValue(out int n) => n is >= 0 and <= 2 ? ResizeModes[n] : null,
        JsonValue v when v.TryGetValue(out string? s) => ResizeAliases.GetValueOrDefault(s!, s!),
        _ => null,
    };

    /// <summary>0/1/2 or the extension's name (its ControlMode enum's values) → the mode; null = neither.</summary>
    static ControlMode? ControlModeOf(JsonNode? node) => node switch
    {
        null => Pipelines.ControlMode.Balanced,
        JsonValue v when v.TryGetValue(out int n) => ControlModes.FromExtension(n.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        JsonValue v when v.TryGetValue(out string? s) => ControlModes.FromExtension(s!),
        _ => null,
    };

    /// <summary>"Crop and Resize": the centred part of the map with the output's aspect ratio (the run then resizes it).</summary>
    static RgbImage CropToAspect(RgbImage map, int width, int height)
    {
        int w = map.Width, h = map.Height;
        if ((long)w * height > (long)h * width) w = (int)Math.Max(1, Math.Round((double)h * width / height));
        else h = (int)Math.Max(1, Math.Round((double)w * height / width));
        if (w == map.Width && h == map.Height) return map;
        int left = (map.Width - w) / 2, top = (map.Height - h) / 2;
        var rgb = new byte[w * h * 3];
        for (int y = 0; y < h; y++)
            Array.Copy(map.Rgb, ((top + y) * map.Width + left) * 3, rgb, y * w * 3, w * 3);
        return new RgbImage(w, h, rgb);
    }
}
