using System.Text.Json.Nodes;

namespace SharpDiffusion.Server.Hosting;

/// <summary>
/// The server's AUTOMATIC1111 options (GET/POST /sdapi/v1/options): the keys this server acts on, plus any other key a
/// client sets, kept and echoed as A1111 keeps them. One instance per server (no process-wide state).
/// </summary>
public sealed class ServerSettings
{
    readonly object _gate = new();
    readonly JsonObject _values = new()
    {
        ["CLIP_stop_at_last_layers"] = 1,
        ["live_previews_enable"] = true,
        ["show_progress_every_n_steps"] = 1,
        ["show_progress_type"] = "Approx cheap",
        ["samples_format"] = "png",
        ["sd_vae"] = "Automatic",
    };

    public int ClipSkip => Get("CLIP_stop_at_last_layers", 1);
    public bool LivePreviews { get { lock (_gate) return _values["live_previews_enable"]?.GetValueKind() != System.Text.Json.JsonValueKind.False; } }
    /// <summary>A preview every N steps; -1 = only at the end (A1111's meaning).</summary>
    public int PreviewEvery => Get("show_progress_every_n_steps", 1);
    /// <summary>"Full" decodes with the VAE; anything else uses the cheap linear map.</summary>
    public bool FullPreview { get { lock (_gate) return (string?)_values["show_progress_type"] == "Full"; } }
    /// <summary>A1111's "TAESD" preview type: decode previews with serve --preview-vae (the cheap map when none fits).</summary>
    public bool TaesdPreview { get { lock (_gate) return (string?)_values["show_progress_type"] == "TAESD"; } }
    /// <summary>The sd_vae option: a name of /sdapi/v1/sd-vae, or "Automatic"/"None" (the model's own VAE).</summary>
    public string SdVae { get { lock (_gate) return _values["sd_vae"] is JsonValue v && v.TryGetValue(out string? s) ? s : "Automatic"; } }

    int Get(string key, int fallback)
    {
        lock (_gate)
            return Number(_values[key]) is double d && double.IsFinite(d) ? (int)d : fallback;
    }

    /// <summary>A JSON number, whether parsed or built from a C# value (TryGetValue&lt;double&gt; fails on a built int).</summary>
    static double? Number(JsonNode? node) =>
        node is JsonValue v && v.GetValueKind() == System.Text.Json.JsonValueKind.Number
            ? double.Parse(v.ToJsonString(), System.Globalization.CultureInfo.InvariantCulture) : null;

    public JsonObject Snapshot() { lock (_gate) return (JsonObject)_values.DeepClone(); }

    /// <summary>Throws the one-line error of the first value this server would refuse.</summary>
    public static void Check(JsonObject changes)
    {
        foreach (var (key, value) in changes)
        {
            if (key is "CLIP_stop_at_last_layers" or "show_progress_every_n_steps"
                && !(Number(value) is double d && d == Math.Floor(d) && d is >= -1 and <= 1000))
                throw new ArgumentException($"Option {key} must be a whole number; got {value?.ToJsonString() ?? "null"}.");
        }
    }

    /// <summary>Takes values stored elsewhere (checked when they were set there: a gateway's shared options).</summary>
    public void Apply(JsonObject stored)
    {
        lock (_gate)
            foreach (var (key, value) in stored)
                if (key != "sd_model_checkpoint")
                    _values[key] = value?.DeepClone();
    }

    /// <summary>Checks then stores the values (all or none); the model switch is done by the caller.</summary>
    public void Set(JsonObject changes)
    {
        Check(changes);
        lock (_gate)
            foreach (var (key, value) in changes)
                if (key != "sd_model_checkpoint")
                    _values[key] = value?.DeepClone();
    }
}
