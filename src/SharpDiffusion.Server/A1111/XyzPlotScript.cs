using System.Globalization;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using SharpDiffusion.Imaging;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Server.Hosting;
using SharpDiffusion.Server.Jobs;

namespace SharpDiffusion.Server.A1111;

/// <summary>
/// txt2img/img2img with <c>script_name: "x/y/z plot"</c> (AUTOMATIC1111's scripts/xyz_grid.py through its API):
/// <c>script_args</c> in the script's order — x_type, x_values, x_values_dropdown, y_type, y_values, y_values_dropdown,
/// z_type, z_values, z_values_dropdown, draw_legend, include_lone_images, include_sub_grids, no_fixed_seeds, margin_size,
/// csv_mode — where a type is the index into the script's axis list for that task (or, an extension, its label). Each
/// cell is the request with that cell's values, checked before anything is queued, then all cells run as one job. The
/// answer is A1111's: the grid first (its infotext with "Script: X/Y/Z plot", "X Type", "X Values", ...), then the
/// cells when include_lone_images; "infotexts" holds the grid's and every cell's.
/// </summary>
public static class XyzPlotScript
{
    /// <summary>The script's axis labels for txt2img and img2img, in its order (the index a client sends).</summary>
    static readonly string[] Txt2Img =
    [
        "Nothing", "Seed", "Var. seed", "Var. strength", "Steps", "Hires steps", "CFG Scale", "Prompt S/R", "Prompt order", "Sampler",
        "Hires sampler", "Checkpoint name", "Negative Guidance minimum sigma", "Sigma Churn", "Sigma min", "Sigma max", "Sigma noise",
        "Schedule type", "Schedule min sigma", "Schedule max sigma", "Schedule rho", "Eta", "Clip skip", "Denoising",
        "Initial noise multiplier", "Extra noise", "Hires upscaler", "VAE", "Styles", "UniPC Order", "Face restore",
        "Token merging ratio", "Token merging ratio high-res", "Always discard next-to-last sigma", "SGM noise multiplier",
        "Refiner checkpoint", "Refiner switch at", "RNG source",
    ];
    static readonly string[] Img2Img =
    [
        "Nothing", "Seed", "Var. seed", "Var. strength", "Steps", "CFG Scale", "Image CFG Scale", "Prompt S/R", "Prompt order", "Sampler",
        "Checkpoint name", "Negative Guidance minimum sigma", "Sigma Churn", "Sigma min", "Sigma max", "Sigma noise", "Schedule type",
        "Schedule min sigma", "Schedule max sigma", "Schedule rho", "Eta", "Clip skip", "Denoising", "Initial noise multiplier",
        "Extra noise", "Cond. Image Mask Weight", "VAE", "Styles", "UniPC Order", "Face restore", "Token merging ratio",
        "Token merging ratio high-res", "Always discard next-to-last sigma", "SGM noise multiplier", "Refiner checkpoint",
        "Refiner switch at", "RNG source",
    ];

    /// <summary>The axes this server draws: the request field each sets and its value type.</summary>
    static readonly Dictionary<string, (string Field, AxisValueType Type)> Axes = new()
    {
        ["Nothing"] = ("", AxisValueType.Text),
        ["Seed"] = ("seed", AxisValueType.Integer),
        ["Var. seed"] = ("subseed", AxisValueType.Integer),
        ["Var. strength"] = ("subseed_strength", AxisValueType.Number),
        ["Steps"] = ("steps", AxisValueType.Integer),
        ["Hires steps"] = ("hr_second_pass_steps", AxisValueType.Integer),
        ["CFG Scale"] = ("cfg_scale", AxisValueType.Number),
        ["Prompt S/R"] = ("prompt", AxisValueType.Text),
        ["Sampler"] = ("sampler_name", AxisValueType.Text),
        ["Hires sampler"] = ("hr_sampler_name", AxisValueType.Text),
        ["Checkpoint name"] = ("sd_model_checkpoint", AxisValueType.Text),
        ["Schedule type"] = ("scheduler", AxisValueType.Text),
        ["Clip skip"] = ("CLIP_stop_at_last_layers", AxisValueType.Integer),
        ["Denoising"] = ("denoising_strength", AxisValueType.Number),
        ["Hires upscaler"] = ("hr_upscaler", AxisValueType.Text),
    };

    /// <summary>Axes whose values A1111 takes from the dropdown list unless csv_mode.</summary>
    static readonly HashSet<string> Choices = ["Sampler", "Hires sampler", "Checkpoint name", "Schedule type", "Hires upscaler"];

    sealed record Axis(string Letter, string Label, string Text, IReadOnlyList<string> Values, IReadOnlyList<string> Labels);

    public static bool Applies(JsonObject body) =>
        body["script_name"] is JsonValue v && v.TryGetValue(out string? name) && name.Trim().Equals("x/y/z plot", StringComparison.OrdinalIgnoreCase);

    public static async Task<IResult> RunAsync(HttpContext context, ServerContext server, JsonObject body, string task)
    {
        var args = body["script_args"] as JsonArray ?? [];
        bool Flag(int i) => i < args.Count && args[i] is JsonValue v && v.TryGetValue(out bool b) && b;
        bool csv = Flag(14), lone = Flag(10), fixedSeeds = !Flag(12);
        int margin = args.Count > 13 && args[13] is JsonValue m && m.TryGetValue(out double md) ? (int)Math.Clamp(md, 0, 500) : 0;
        var axes = new[] { ReadAxis(args, 0, "X", task, csv), ReadAxis(args, 3, "Y", task, csv), ReadAxis(args, 6, "Z", task, csv) };
        var (x, y, z) = (axes[0], axes[1], axes[2]);

        // A1111's fix_seed: the request's seed (and subseed) drawn once, and -1 on a seed axis drawn once per value.
        var template = (JsonObject)body.DeepClone();
        template.Remove("script_name");
        template.Remove("script_args");
        template["batch_size"] = 1; // one picture a cell
        template["n_iter"] = 1;
        if (fixedSeeds)
            foreach (var field in new[] { "seed", "subseed" })
                if (template[field] is not JsonValue sv || !sv.TryGetValue(out double seed) || seed < 0)
                    template[field] = Random.Shared.NextInt64(0, uint.MaxValue);
        var requests = new List<GenerationRequest>();
        for (int iz = 0; iz < z.Values.Count; iz++)
        for (int iy = 0; iy < y.Values.Count; iy++)
        for (int ix = 0; ix < x.Values.Count; ix++)
        {
            var cell = (JsonObject)template.DeepClone();
            Apply(cell, x, ix);
            Apply(cell, y, iy);
            Apply(cell, z, iz);
            requests.Add(await server.ParseRequestAsync(cell, task)); // every cell is checked before any is queued
        }
        var first = requests[0];
        long megapixels = (long)Math.Round(requests.Count * (double)(first.Options.Width ?? 512) * (first.Options.Height ?? 512) / 1e6);
        if (megapixels >= 200)
            throw new ArgumentException($"script_args: the grid would be {megapixels} megapixels ({requests.Count} cells); A1111's limit is 200. Use fewer values.");
        Job job;
        if (server.Gateway is not null)
        {
            // One job on one worker, which serves one model: the cells as checked here (seeds resolved), the axes as drawn.
            if (requests.Select(r => r.Checkpoint).Distinct().Count() > 1)
                throw new ArgumentException("script_args: through a gateway of a Redis queue a plot runs on one worker, which serves one model; plot one checkpoint at a time (no Checkpoint name axis).");
            var payload = new JsonObject
            {
                ["task"] = "xyz", ["xyz_task"] = task, ["lone"] = lone, ["margin"] = margin, ["body"] = body.DeepClone(),
                ["cells"] = new JsonArray(requests.Select(r => (JsonNode?)r.Source.DeepClone()).ToArray()),
                ["axes"] = new JsonArray(axes.Select(a => (JsonNode?)new JsonObject
                {
                    ["letter"] = a.Letter, ["label"] = a.Label, ["text"] = a.Text,
                    ["values"] = new JsonArray(a.Values.Select(v => (JsonNode?)v).ToArray()),
                    ["labels"] = new JsonArray(a.Labels.Select(v => (JsonNode?)v).ToArray()),
                }).ToArray()),
            };
            job = await server.SubmitToWorkersAsync(first.TaskId ?? ServerContext.NewJobId(), payload, task, first.Checkpoint);
        }
        else
            job = server.LocalQueue!.Enqueue(new Job(first.TaskId ?? ServerContext.NewJobId(), task,
                job => Run(job, server.Work!, requests, x, y, z, lone, margin, body)));
        await server.WaitAsync(job, context.RequestAborted);
        var outcome = ApiCall.A1111Outcome(job);
        job.ReleaseResult();
        return outcome;
    }

    static Axis ReadAxis(JsonArray args, int at, string letter, string task, bool csv)
    {
        string field = $"script_args[{at}]";
        var labels = task == "img2img" ? Img2Img : Txt2Img;
        string label = at < args.Count ? args[at] switch
        {
            JsonValue v when v.TryGetValue(out double i) && i == Math.Floor(i) && i >= 0 && i < labels.Length => labels[(int)i],
            JsonValue v when v.TryGetValue(out string? s) && labels.FirstOrDefault(l => l.Equals(s, StringComparison.OrdinalIgnoreCase)) is { } l => l,
            null => "Nothing",
            _ => throw new ArgumentException($"{field} ({letter} type): give an index 0-{labels.Length - 1} into the script's {task} axes or an axis name such as \"Steps\"."),
        } : "Nothing";
        if (!Axes.TryGetValue(label, out var axis))
            throw new ArgumentException($"{field}: the {letter} axis '{label}' is not supported by this server; it draws {string.Join(", ", Axes.Keys.Where(k => k != "Nothing"))}.");
        if (label == "Nothing") return new Axis(letter, label, "", [""], [""]);
        string text = at + 1 < args.Count && args[at + 1] is JsonValue tv && tv.TryGetValue(out string? t) ? t : "";
        if (Choices.Contains(label) && !csv && at + 2 < args.Count && args[at + 2] is JsonArray dropdown && dropdown.Count > 0)
            text = string.Join(",", dropdown.Select(d => d is JsonValue dv && dv.TryGetValue(out string? ds) ? Csv(ds) : ""));
        var values = AxisValues.Parse(text, axis.Type, $"{field} ({letter} values)");
        if (label is "Seed" or "Var. seed")
            values = values.Select(v => v == "-1" ? Random.Shared.NextInt64(0, uint.MaxValue).ToString(CultureInfo.InvariantCulture) : v).ToList();
        // A1111's format_value_add_label, except the sampler, Prompt S/R and checkpoint, which show the value alone.
        var shown = values.Select(v => label is "Sampler" or "Prompt S/R" or "Checkpoint name" ? v
            : $"{label}: {(axis.Type == AxisValueType.Number && v.IndexOfAny(['.', 'E', 'e']) < 0 ? v + ".0" : v)}").ToList();
        return new Axis(letter, label, text, values, shown);
    }

    static string Csv(string value) => value.IndexOfAny([',', '"']) < 0 ? value : "\"" + value.Replace("\"", "\"\"") + "\"";

    /// <summary>The cell's value of one axis written into its request body, as the script's apply functions do.</summary>
    static void Apply(JsonObject cell, Axis axis, int index)
    {
        if (axis.Label == "Nothing") return;
        var (field, type) = Axes[axis.Label];
        string value = axis.Values[index];
        JsonNode node = type switch
        {
            AxisValueType.Integer => long.Parse(value, CultureInfo.InvariantCulture),
            AxisValueType.Number => double.Parse(value, CultureInfo.InvariantCulture),
            _ => value,
        };
        switch (axis.Label)
        {
            case "Prompt S/R":
                string search = axis.Values[0], prompt = cell["prompt"]?.GetValue<string>() ?? "", negative = cell["negative_prompt"]?.GetValue<string>() ?? "";
                if (!prompt.Contains(search, StringComparison.Ordinal) && !negative.Contains(search, StringComparison.Ordinal))
                    throw new ArgumentException($"Prompt S/R did not find {search} in prompt or negative prompt.");
                cell["prompt"] = prompt.Replace(search, value, StringComparison.Ordinal);
                cell["negative_prompt"] = negative.Replace(search, value, StringComparison.Ordinal);
                break;
            case "Checkpoint name" or "Clip skip":
                var overrides = cell["override_settings"] as JsonObject ?? new JsonObject();
                overrides[field] = node;
                cell["override_settings"] = overrides;
                break;
            default:
                cell[field] = node;
                break;
        }
    }

    /// <summary>A Redis worker's plot (the payload a gateway queued): each cell read again by <paramref name="parse"/>
    /// (this worker's folders), then drawn as on one process.</summary>
    public static JsonObject RunQueued(Job job, GenerationWork work, JsonObject payload, Func<JsonObject, string, GenerationRequest> parse)
    {
        string task = (string?)payload["xyz_task"] ?? "txt2img";
        var requests = payload["cells"]!.AsArray().Select(c => parse(c!.AsObject(), task)).ToList();
        static List<string> Strings(JsonNode? list) => list!.AsArray().Select(n => (string)n!).ToList();
        var axes = payload["axes"]!.AsArray().Select(a => new Axis((string)a!["letter"]!, (string)a["label"]!, (string)a["text"]!,
            Strings(a["values"]), Strings(a["labels"]))).ToList();
        return Run(job, work, requests, axes[0], axes[1], axes[2], (bool)payload["lone"]!, (int)payload["margin"]!, payload["body"]!.AsObject());
    }

    /// <summary>On the worker: each cell as its own generation, then the grid (<see cref="ImageGrid.Xyz"/>) and A1111's answer.</summary>
    static JsonObject Run(Job job, GenerationWork work, List<GenerationRequest> requests, Axis x, Axis y, Axis z, bool lone, int margin, JsonObject body)
    {
        var pictures = new List<RgbImage>();
        var pngs = new List<string>();
        var infotexts = new List<string>();
        var seeds = new JsonArray();
        JsonObject? firstInfo = null, firstParameters = null;
        foreach (var request in requests)
        {
            job.Cancellation.ThrowIfCancellationRequested();
            var answer = work.Run(job, request with { SendImages = true });
            var info = JsonNode.Parse(answer["info"]!.GetValue<string>())!.AsObject();
            firstInfo ??= info;
            firstParameters ??= answer["parameters"]!.AsObject();
            string png = answer["images"]!.AsArray()[0]!.GetValue<string>();
            pngs.Add(png);
            pictures.Add(ImageFile.Decode(Convert.FromBase64String(png), "cell"));
            infotexts.Add(info["infotexts"]!.AsArray()[0]!.GetValue<string>());
            seeds.Add(info["seed"]!.GetValue<long>());
        }
        var grid = ImageGrid.Xyz(pictures, x.Labels, y.Labels, z.Labels, margin);
        (string, string, string)? Pair(Axis a) => a.Label == "Nothing" ? null : (a.Letter, a.Label, a.Text);
        string gridInfo = XyzPlot.GridInfoText(infotexts[0], Pair(x), Pair(y), Pair(z));
        var gridPng = PngFile.Encode(grid.Width, grid.Height, grid.Rgb, new Dictionary<string, string> { ["parameters"] = gridInfo });
        var images = new JsonArray(JsonValue.Create(Convert.ToBase64String(gridPng)));
        if (lone) foreach (var png in pngs) images.Add(png);
        var outInfo = (JsonObject)firstInfo!.DeepClone();
        outInfo["infotexts"] = new JsonArray(infotexts.Prepend(gridInfo).Select(i => (JsonNode?)JsonValue.Create(i)).ToArray());
        outInfo["all_seeds"] = seeds;
        outInfo["index_of_first_image"] = 1;
        outInfo["width"] = grid.Width;
        outInfo["height"] = grid.Height;
        var parameters = (JsonObject)firstParameters!.DeepClone();
        parameters["script_name"] = body["script_name"]?.DeepClone();
        parameters["script_args"] = body["script_args"]?.DeepClone();
        parameters["seed"] = requests[0].Seed;
        return new JsonObject
        {
            ["images"] = requests[0].SendImages ? images : new JsonArray(),
            ["parameters"] = parameters,
            ["info"] = outInfo.ToJsonString(),
        };
    }
}
