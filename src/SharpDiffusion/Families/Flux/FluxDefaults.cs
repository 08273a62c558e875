using SharpDiffusion.Configuration;
using SharpDiffusion.Loading;
using SharpDiffusion.Loading.SingleFile;

namespace SharpDiffusion.Families.Flux;

/// <summary>
/// The sampling settings of Flux.1's two models as diffusers' model cards call them: schnell (timestep-distilled, no
/// guidance embedding) 4 steps, guidance 0, 256 T5 tokens; dev (guidance-distilled) 28 steps, embedded guidance 3.5,
/// 512 tokens (FluxPipeline's own defaults). Which one a model is comes from its weights: guidance_in / guidance_embeds.
/// </summary>
public sealed record FluxDefaults(string Variant, int NumInferenceSteps, double GuidanceScale, int MaxSequenceLength)
{
    public static readonly FluxDefaults Schnell = new("schnell", 4, 0.0, 256);
    public static readonly FluxDefaults Dev = new("dev", 28, 3.5, 512);

    public static FluxDefaults For(bool guidanceEmbeds) => guidanceEmbeds ? Dev : Schnell;

    public GenerationDefaults Generation => new() { NumInferenceSteps = NumInferenceSteps, GuidanceScale = GuidanceScale };

    /// <summary>The defaults of <paramref name="model"/> when it is a Flux model: a FluxPipeline folder (its transformer's
    /// guidance_embeds, or <paramref name="transformerFile"/>'s guidance_in when that replaces it) or a BFL transformer
    /// file; null for anything else, or what cannot be read (loading it then says why).</summary>
    public static FluxDefaults? Of(string model, string? transformerFile = null)
    {
        try
        {
            if (Directory.Exists(model))
            {
                var folder = DiffusersFolder.Open(model);
                if (!FluxFamily.Instance.PipelineClasses.Contains(folder.ClassName)) return null;
                if (transformerFile is not null) return OfFile(transformerFile);
                var config = JsonConfig.Load(Path.Combine(folder.Component("transformer"), "config.json"));
                return For(config.GetBool("guidance_embeds", false));
            }
            return File.Exists(model) ? OfFile(model) : null;
        }
        catch (Exception e) when (e is IOException or InvalidDataException or NotSupportedException or UnauthorizedAccessException or ArgumentException)
        {
            return null;
        }
    }

    static FluxDefaults? OfFile(string path)
    {
        using var file = TensorFiles.Open(path);
        if (!FluxComponentFiles.IsFluxTransformer(file)) return null;
        return For(file.Headers.Any(h => BflKeyMap.Strip(h.Name) == "guidance_in.in_layer.weight"));
    }

    public override string ToString() =>
        $"Flux.1 {Variant} defaults: {NumInferenceSteps} steps, guidance {GuidanceScale:0.###}, {MaxSequenceLength} T5 tokens";
}
