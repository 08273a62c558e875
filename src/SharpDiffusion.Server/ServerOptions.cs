using SharpDiffusion.Loading;

namespace SharpDiffusion.Server;

/// <summary>What `serve` is told: the model(s), where it listens, who may call it, and its limits.</summary>
public sealed record ServerOptions
{
    /// <summary>The model loaded at start: a diffusers folder or a single-file checkpoint (unused with <see cref="Queue"/>).</summary>
    public required string Model { get; init; }
    /// <summary>redis://HOST:PORT[/DB] (or redis+sentinel://…, <see cref="Distributed.RedisAddress"/>): run as a gateway: jobs go to workers through Redis, no model is loaded here.
    /// Null = one process, one model, jobs in memory.</summary>
    public string? Queue { get; init; }
    /// <summary>More models (folders with model_index.json, .safetensors/.ckpt files), listed by /sdapi/v1/sd-models and
    /// selectable by name; nothing outside it can be named.</summary>
    public string? ModelsDir { get; init; }
    /// <summary>&lt;lora:NAME&gt; in prompts finds NAME.safetensors here (default: MODELS_DIR/Lora if it exists).</summary>
    public string? LoraDir { get; init; }
    /// <summary>ControlNets that txt2img/img2img units may name (/controlnet/model_list lists them); null = none.</summary>
    public string? ControlNetDir { get; init; }
    /// <summary>ESRGAN-family upscalers (.pth/.safetensors) that the Extras API and hr_upscaler name by file stem
    /// (/sdapi/v1/upscalers lists them); null = only the built-in ones.</summary>
    public string? UpscalerDir { get; init; }
    /// <summary>Textual-inversion embeddings loaded into every model (default: MODELS_DIR/embeddings if it exists).</summary>
    public string? EmbeddingsDir { get; init; }
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>0 = any free port (printed at start).</summary>
    public int Port { get; init; } = 7860;
    /// <summary>HTTP Basic credentials; empty = no authentication.</summary>
    public IReadOnlyList<(string User, string Password)> ApiAuth { get; init; } = [];
    /// <summary>Origins allowed by CORS; empty = none (same origin only).</summary>
    public IReadOnlyList<string> CorsOrigins { get; init; } = [];
    /// <summary>Jobs waiting behind the running one (with a Redis queue: per model); one more is refused with 503 and Retry-After.</summary>
    public int QueueSize { get; init; } = 16;
    /// <summary>libtorch threads (default: every core).</summary>
    public int? Threads { get; init; }
    /// <summary>Where generated PNGs are also written; null = nowhere (they only go back to the client).</summary>
    public string? OutputDir { get; init; }
    /// <summary>Largest request body; more is refused with 413.</summary>
    public long MaxBodyBytes { get; init; } = 64L << 20;
    /// <summary>Largest image side a request may ask for or upload (pixels).</summary>
    public int MaxImageSide { get; init; } = 4096;
    /// <summary>Finished jobs stay readable (GET /jobs/{id}) this long (with a Redis queue: their records expire then).</summary>
    public TimeSpan JobRetention { get; init; } = TimeSpan.FromMinutes(30);
    public LoadOptions Load { get; init; } = new();
    /// <summary>With a single-file model: its LDM .yaml.</summary>
    public string? OriginalConfig { get; init; }
}
