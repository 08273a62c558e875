using SharpDiffusion.Conditioning;
using SharpDiffusion.Loading;
using SharpDiffusion.Models.Clip;
using SharpDiffusion.Models.UNet;
using SharpDiffusion.Schedulers;
using SharpDiffusion.Text;
using static TorchSharp.torch;

namespace SharpDiffusion.Families.StableDiffusion;

/// <summary>
/// The SDXL refiner (stabilityai/stable-diffusion-xl-refiner-1.0, a StableDiffusionXLImg2ImgPipeline folder without
/// text_encoder): OpenCLIP bigG alone (tokenizer_2, text_encoder_2) and a UNet whose text_time embedding takes five
/// time ids — original size, crop, aesthetic score — when model_index.json says requires_aesthetics_score
/// (add_embedding input = projection_dim + 5 × addition_time_embed_dim). It runs as img2img of its own, or as the second
/// expert after an SDXL base (<see cref="Pipelines.RefinerPass"/>).
/// </summary>
public sealed class StableDiffusionXLRefinerFamily : StableDiffusionXLFamily
{
    public static new StableDiffusionXLRefinerFamily Instance { get; } = new();

    public override string Name => "SDXL refiner";

    /// <summary>Detected through <see cref="StableDiffusionXLFamily"/> (the same pipeline class), never by its own.</summary>
    public override IReadOnlyList<string> PipelineClasses { get; } = [];

    public override ModelComponents Load(DiffusersFolder folder, LoadOptions options)
    {
        var tokenizer2 = ClipTokenizer.FromDirectory(folder.Component("tokenizer_2"));
        var schedulerConfig = SchedulerConfig.Load(Path.Combine(folder.Component("scheduler"), "scheduler_config.json"));
        return LoadComponents(folder, options, load =>
        {
            var encoder2 = load(ComponentLoader.TextEncoder, "text_encoder_2");
            CheckVocabulary(folder, "tokenizer_2", tokenizer2, "text_encoder_2", (ClipTextModel)encoder2.Module);
            var unet = load(ComponentLoader.UNet, "unet");
            var vae = load(ComponentLoader.Vae, "vae");
            return Assemble(tokenizer2, new PipelineWeights(encoder2, unet, vae), schedulerConfig, options,
                folder.ForceZerosForEmptyPrompt, folder.RequiresAestheticsScore, loadWarnings: null, source: Path.Combine(folder.Root, "model_index.json"));
        });
    }

    /// <summary>Loaded refiner weights (<paramref name="weights"/>' text encoder is bigG) → components, refused in one line
    /// when the UNet's add_embedding does not take bigG's projection plus 5 (or 6) time ids.</summary>
    internal static ModelComponents Assemble(ClipTokenizer tokenizer2, PipelineWeights weights, SchedulerConfig schedulerConfig, LoadOptions options,
        bool forceZerosForEmptyPrompt, bool requiresAestheticsScore, IReadOnlyList<string>? loadWarnings, string source = "the refiner")
    {
        var unet = ((UNet2DConditionModel)weights.Unet.Module).Config;
        var encoder2 = (ClipTextModel)weights.TextEncoder.Module;
        if (unet.AdditionEmbedType != "text_time")
            throw new InvalidDataException($"{source}: an SDXL refiner's UNet has the text_time embedding (addition_embed_type); this one has none.");
        int timeIds = requiresAestheticsScore ? 5 : 6;
        int passed = (encoder2.Config.ProjectionDim ?? 0) + timeIds * unet.AdditionTimeEmbedDim;
        if (passed != unet.ProjectionClassEmbeddingsInputDim)
            throw new InvalidDataException($"{source}: requires_aesthetics_score is {(requiresAestheticsScore ? "true" : "false")} ({timeIds} time ids), so the UNet's " +
                $"add_embedding would get {passed} inputs but takes {unet.ProjectionClassEmbeddingsInputDim}; set requires_aesthetics_score to " +
                $"{(requiresAestheticsScore ? "false" : "true")} in model_index.json if this is {(requiresAestheticsScore ? "a base" : "the refiner")} model.");
        var conditioner = new SdxlTextConditioner(null, null, tokenizer2, weights.TextEncoder, new Device(options.Device), options.DType,
            forceZerosForEmptyPrompt, requiresAestheticsScore);
        return Assemble(Instance, conditioner, weights, schedulerConfig, options, loadWarnings);
    }
}
