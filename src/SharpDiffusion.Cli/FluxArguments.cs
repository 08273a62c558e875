using SharpDiffusion.Families.Flux;
using SharpDiffusion.Loading;
using SharpDiffusion.Pipelines;

namespace SharpDiffusion.Cli;

/// <summary>`generate` with a Flux model: diffusers' defaults for the model the weights are (schnell 4 steps guidance 0,
/// dev 28 steps guidance 3.5; <see cref="FluxDefaults"/>), printed; and the --vae of a transformer file given as the
/// model, which is the model's own VAE (read with it), not a replacement.</summary>
static class FluxArguments
{
    public static readonly OptionSpec[] Options =
    [
        new("single-file-config", OptionKind.Text, "with a Flux transformer file: a diffusers folder whose config.json files (transformer, vae, text_encoder, text_encoder_2) and " +
            "scheduler config describe the component files, as diffusers' from_single_file(config=...), for models of non-standard sizes (default: inferred from the tensors, BFL's configs)", "DIR"),
    ];

    /// <summary>The single-file options of `generate`: --text-encoder files, and for a Flux transformer file its --vae and config folder.</summary>
    public static Loading.SingleFile.SingleFileOptions Apply(Loading.SingleFile.SingleFileOptions options, CommandLine cl) =>
        options with { Vae = cl.String("vae"), DiffusersConfig = cl.String("single-file-config") };

    /// <summary>The Flux defaults of <paramref name="model"/> (null for other models), told when --steps or --guidance
    /// leave one to them.</summary>
    public static GenerationDefaults? Defaults(string model, CommandLine cl)
    {
        if (FluxDefaults.Of(model, cl.String("transformer")) is not { } flux) return null;
        if (!cl.Given("steps") || !cl.Given("guidance") || !cl.Given("max-sequence-length"))
            Progress.Line($"{flux} (--steps, --guidance, --max-sequence-length change them)");
        return flux.Generation;
    }

    /// <summary>Whether --vae already went into <paramref name="pipeline"/> when it was assembled from component files.</summary>
    public static bool VaeAssembled(StableDiffusionPipeline pipeline, string model) => pipeline.Family is FluxFamily && File.Exists(model);
}
