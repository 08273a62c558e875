using System.Globalization;
using SharpDiffusion.Families.Flux;
using SharpDiffusion.Pipelines;

namespace SharpDiffusion.Server.A1111;

/// <summary>
/// A request run on a Flux.1 model as Forge runs one: the guidance is the model's embedded (distilled) guidance, from
/// distilled_cfg_scale, else cfg_scale when the client sent it, else the model's default (dev 3.5; schnell ignores it);
/// steps the model's default when none were sent (schnell 4, dev 28: <see cref="FluxDefaults"/>); a negative prompt is
/// ignored with a warning, since Flux runs without a classifier-free guidance batch.
/// </summary>
public static class FluxRequests
{
    public static GenerationOptions ForFlux(GenerationRequest request, GenerationOptions o, FluxTransformerDenoiser denoiser, ICollection<string> warnings)
    {
        var defaults = FluxDefaults.For(denoiser.Transformer.Config.GuidanceEmbeds);
        var sent = request.Source;
        double guidance = request.DistilledCfgScale ?? (sent["cfg_scale"] is not null ? o.GuidanceScale : defaults.GuidanceScale);
        int steps = sent["steps"] is not null ? o.NumInferenceSteps : defaults.NumInferenceSteps;
        if (new[] { o.NegativePrompts, o.NegativePrompts2, o.NegativePrompts3 }.Any(n => n?.Any(text => text.Length > 0) == true))
            warnings.Add("negative_prompt: Flux.1 runs without classifier-free guidance and takes no negative prompt; it was ignored (as Forge does).");
        return o with { GuidanceScale = guidance, NumInferenceSteps = steps, NegativePrompts = [""], NegativePrompts2 = null, NegativePrompts3 = null };
    }
}
