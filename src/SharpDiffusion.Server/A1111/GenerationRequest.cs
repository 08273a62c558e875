using System.Text.Json.Nodes;
using SharpDiffusion.Imaging;
using SharpDiffusion.Pipelines;

namespace SharpDiffusion.Server.A1111;

/// <summary>
/// One generation request, whatever API it came from: the options of its first image (later images add their index to
/// the seed, as AUTOMATIC1111 numbers its seeds), how many images, the model to use, and the request as echoed back.
/// </summary>
public sealed record GenerationRequest
{
    /// <summary>Options for image 0; image i uses seed <see cref="Seed"/> + i.</summary>
    public required GenerationOptions Options { get; init; }
    /// <summary>Resolved at acceptance (−1 → a random seed), so the job draws the same images wherever it runs.</summary>
    public required long Seed { get; init; }
    public int BatchSize { get; init; } = 1;
    public int Iterations { get; init; } = 1;
    public int ImageCount => BatchSize * Iterations;
    /// <summary>A model name (override_settings.sd_model_checkpoint); null = the loaded one.</summary>
    public string? Checkpoint { get; init; }
    /// <summary>A1111's refiner_checkpoint (a model name of the catalog: an SDXL refiner) and refiner_switch_at; null = none.</summary>
    public string? RefinerCheckpoint { get; init; }
    public double RefinerSwitchAt { get; init; } = RefinerOptions.DefaultSwitchAt;
    /// <summary>The sampler and schedule type as asked ("Euler", "Simple"): resolved again against the model that runs
    /// the job (<see cref="SamplerNames.Resolve"/>), which may not be the one known when the request was accepted.</summary>
    public string Sampler { get; init; } = "Euler";
    public string? Schedule { get; init; }
    public bool RestoreCheckpoint { get; init; } = true;
    public bool SendImages { get; init; } = true;
    public bool SaveImages { get; init; }
    /// <summary>"txt2img" or "img2img".</summary>
    public required string Task { get; init; }
    /// <summary>The request with defaults filled in (the response's "parameters").</summary>
    public required JsonObject Parameters { get; init; }
    /// <summary>What was accepted but not done (unsupported features asked for), reported in the response.</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];
    public string? TaskId { get; init; }
    /// <summary>The body as received with its seed resolved: what a Redis queue sends to a worker, which parses it again
    /// (same code, same result) against its own model.</summary>
    public required JsonObject Source { get; init; }

    /// <summary>Forge's distilled_cfg_scale: a Flux model's embedded guidance (else cfg_scale serves); null when not sent.</summary>
    public double? DistilledCfgScale { get; init; }

    public GenerationOptions OptionsFor(int image) => Options with { Seed = Seed + image };
}

/// <summary>Decodes images sent as base64 (raw or data: URLs) and refuses what is too large.</summary>
public static class Base64Images
{
    /// <summary>The bytes of a base64 field: raw base64 or a base64 data: URL (URLs are not fetched).</summary>
    public static byte[] Bytes(string text, string field)
    {
        string data = text.Trim();
        if (data.StartsWith("data:", StringComparison.OrdinalIgnoreCase))
        {
            int comma = data.IndexOf(',');
            if (comma < 0 || !data[..comma].EndsWith(";base64", StringComparison.OrdinalIgnoreCase))
                throw new ArgumentException($"{field}: a data: URL must be base64 (data:image/png;base64,...).");
            data = data[(comma + 1)..];
        }
        else if (data.StartsWith("http://", StringComparison.OrdinalIgnoreCase) || data.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"{field}: URLs are not fetched; send the image itself as base64.");
        try { return Convert.FromBase64String(data); }
        catch (FormatException) { throw new ArgumentException($"{field}: not valid base64 (send the image file's bytes, base64-encoded)."); }
    }

    /// <summary>The picture in <paramref name="text"/>, or an error naming <paramref name="field"/>.</summary>
    /// <exception cref="ImageTooLargeException">more than <paramref name="maxSide"/> pixels on a side.</exception>
    public static RgbImage Decode(string text, string field, int maxSide)
    {
        var bytes = Bytes(text, field);
        if (ImageFile.ReadSize(bytes) is var (w, h) && (w > maxSide || h > maxSide)) // before decoding: no huge allocation
            throw new ImageTooLargeException($"{field}: the image is {w}x{h}; at most {maxSide} pixels on a side are accepted.");
        return ImageFile.Decode(bytes, field);
    }
}

/// <summary>An uploaded image larger than the server accepts (413).</summary>
public sealed class ImageTooLargeException(string message) : Exception(message);
