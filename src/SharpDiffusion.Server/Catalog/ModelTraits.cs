using SharpDiffusion.Conditioning;
using SharpDiffusion.Families;
using SharpDiffusion.Families.Flux;
using SharpDiffusion.Families.StableDiffusion;
using SharpDiffusion.Families.StableDiffusion3;
using SharpDiffusion.Loading;
using SharpDiffusion.Pipelines;

namespace SharpDiffusion.Server.Catalog;

/// <summary>
/// What the server must know of a model before it runs it: its family, whether it samples by flow matching (SD3: only
/// the flow-matching Euler, which Forge calls sampler "Euler" with schedule "Simple") and whether it has a T5 encoder
/// (the only one that reads prompt_3, negative_prompt_3 and max_sequence_length). Read from model_index.json when the
/// catalog is scanned, and from the loaded pipeline before a job runs.
/// </summary>
public sealed record ModelTraits(string Family, bool FlowMatching, bool HasT5)
{
    /// <summary>A single-file checkpoint before it is loaded: SD 1.x/2.x or SDXL (its keys tell which), diffusion, no T5.</summary>
    public static ModelTraits SingleFile { get; } = new($"{StableDiffusionFamily.Instance.Name} or {StableDiffusionXLFamily.Instance.Name}", FlowMatching: false, HasT5: false);

    /// <summary>Flux.1: guidance-distilled (the scale is embedded, cfg_scale or distilled_cfg_scale as Forge reads it; no
    /// negative prompt, no CFG batch), flow matching, T5 (max_sequence_length).</summary>
    public bool DistilledGuidance { get; init; }

    /// <summary>How the model is guided, as the page shows it: "cfg" (classifier-free guidance: CFG scale and a negative
    /// prompt), "distilled" (Flux dev: Forge's "Distilled CFG Scale", embedded, no negative prompt) or "none" (Flux schnell:
    /// neither).</summary>
    public string Guidance { get; init; } = "cfg";

    /// <summary>A Flux.1 model (a FluxPipeline folder, or a BFL transformer file with its component files), dev when it has
    /// the guidance embedding.</summary>
    public static ModelTraits Flux(bool guidanceEmbeds) => guidanceEmbeds ? FluxDev : FluxSchnell;

    static readonly ModelTraits FluxDev = new(FluxFamily.Instance.Name, FlowMatching: true, HasT5: true) { DistilledGuidance = true, Guidance = "distilled" };
    static readonly ModelTraits FluxSchnell = FluxDev with { Guidance = "none" };

    /// <summary>The prompt fields a request may fill for this model (A1111's two, then diffusers' T5 ones; Flux's prompt
    /// and prompt_2, its T5 prompt, as diffusers' FluxPipeline names them).</summary>
    public IReadOnlyList<string> PromptFields => DistilledGuidance ? ["prompt", "prompt_2"]
        : HasT5 ? ["prompt", "negative_prompt", "prompt_3", "negative_prompt_3"]
        : ["prompt", "negative_prompt"];

    /// <summary>The traits of a loaded pipeline.</summary>
    public static ModelTraits Of(StableDiffusionPipeline pipeline) => pipeline.Denoiser is FluxTransformerDenoiser flux
        ? Flux(flux.Transformer.Config.GuidanceEmbeds) : new(pipeline.Family.Name,
        FlowMatching: pipeline.Family is StableDiffusion3Family,
        HasT5: pipeline.Conditioner is Sd3TextConditioner { T5: not null });

    /// <summary>The traits of a diffusers folder from its model_index.json (no weights read); null when the folder cannot
    /// be read or names no family this library runs (loading it will say why).</summary>
    public static ModelTraits? OfFolder(string path)
    {
        try
        {
            var folder = DiffusersFolder.Open(path);
            var family = ModelFamily.Detect(folder);
            if (family is FluxFamily) return FluxDefaults.Of(path) is { } defaults ? Flux(defaults == FluxDefaults.Dev) : null;
            bool sd3 = family is StableDiffusion3Family;
            return new ModelTraits(family.Name, FlowMatching: sd3, HasT5: sd3 && folder.ComponentClass("text_encoder_3") is not null);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or NotSupportedException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
