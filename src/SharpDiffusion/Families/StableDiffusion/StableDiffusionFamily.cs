using SharpDiffusion.Conditioning;
using SharpDiffusion.Loading;
using SharpDiffusion.Loading.SingleFile;
using SharpDiffusion.Models.Clip;
using SharpDiffusion.Models.UNet;
using SharpDiffusion.Models.Vae;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Schedulers;
using SharpDiffusion.Text;
using static TorchSharp.torch;

namespace SharpDiffusion.Families.StableDiffusion;

/// <summary>
/// SD 1.x/2.x (inpainting models too): one CLIP text encoder (<see cref="ClipTextConditioner"/>), the UNet
/// (<see cref="UNetDenoiser"/>), 4-channel latents at 1/8 scale, scaling_factor from the VAE's config, no shift.
/// Also the assembly <see cref="StableDiffusionXLFamily"/> shares: the same UNet and VAE, another conditioner.
/// </summary>
public class StableDiffusionFamily : ModelFamily
{
    public static StableDiffusionFamily Instance { get; } = new();

    public override string Name => "SD 1.x/2.x";

    public override IReadOnlyList<string> PipelineClasses { get; } =
        ["StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline"];

    public override ModelComponents Load(DiffusersFolder folder, LoadOptions options) => LoadFolder(folder, options, textEncoder2: null);

    /// <summary>The components of <paramref name="folder"/>: tokenizer and scheduler config first (small, and the usual
    /// reason a download is incomplete), then text_encoder, unet, vae and, for SDXL, tokenizer_2 and text_encoder_2.</summary>
    protected ModelComponents LoadFolder(DiffusersFolder folder, LoadOptions options, string? textEncoder2)
    {
        var tokenizer = ClipTokenizer.FromDirectory(folder.Component("tokenizer"));
        var schedulerConfig = SchedulerConfig.Load(Path.Combine(folder.Component("scheduler"), "scheduler_config.json"));
        return LoadComponents(folder, options, load =>
        {
            var encoder = load(ComponentLoader.TextEncoder, "text_encoder");
            CheckVocabulary(folder, "tokenizer", tokenizer, "text_encoder", (ClipTextModel)encoder.Module);
            var unet = load(ComponentLoader.UNet, "unet");
            var vae = load(ComponentLoader.Vae, "vae");
            ClipTokenizer? tokenizer2 = null;
            ComponentWeights? encoder2 = null;
            if (textEncoder2 is not null)
            {
                tokenizer2 = ClipTokenizer.FromDirectory(folder.Component("tokenizer_2"));
                encoder2 = load(ComponentLoader.TextEncoder, textEncoder2);
                CheckVocabulary(folder, "tokenizer_2", tokenizer2, textEncoder2, (ClipTextModel)encoder2.Module);
            }
            return Assemble(this, tokenizer, new PipelineWeights(encoder, unet, vae, encoder2), schedulerConfig, options, tokenizer2, folder.ForceZerosForEmptyPrompt);
        });
    }

    /// <summary>A single-file checkpoint's components (<see cref="SingleFileLoader"/>), SD 1.x/2.x or SDXL by its keys.</summary>
    public static ModelComponents FromSingleFile(SingleFileComponents c, LoadOptions options) => c.Checkpoint.IsRefiner
        ? StableDiffusionXLRefinerFamily.Assemble(c.Tokenizer, c.Weights, c.SchedulerConfig, options, forceZerosForEmptyPrompt: false, requiresAestheticsScore: true, c.Checkpoint.Warnings)
        : Assemble(Detect(c.Checkpoint), c.Tokenizer, c.Weights, c.SchedulerConfig, options, c.Tokenizer2, forceZerosForEmptyPrompt: true, c.Checkpoint.Warnings);

    /// <summary>Loaded weights → <paramref name="family"/>'s components. SDXL has a second tokenizer and text encoder and
    /// a UNet with the text_time embedding; SD 1.x/2.x none of these.</summary>
    static ModelComponents Assemble(ModelFamily family, ClipTokenizer tokenizer, PipelineWeights weights, SchedulerConfig schedulerConfig,
        LoadOptions options, ClipTokenizer? tokenizer2, bool forceZerosForEmptyPrompt, IReadOnlyList<string>? loadWarnings = null)
    {
        var unet = (UNet2DConditionModel)weights.Unet.Module;
        bool xl = family is StableDiffusionXLFamily;
        if (xl && (tokenizer2 is null || weights.TextEncoder2 is null))
            throw new ArgumentException("SDXL needs both tokenizer_2 and text_encoder_2.");
        if (xl != (unet.Config.AdditionEmbedType == "text_time"))
            throw new InvalidDataException(xl
                ? "There is a second text encoder (text_encoder_2) but the UNet has no SDXL text_time embedding."
                : "The UNet has SDXL's text_time embedding but there is no second text encoder (text_encoder_2).");
        var device = new Device(options.Device);
        ITextConditioner conditioner = xl
            ? new SdxlTextConditioner(tokenizer, weights.TextEncoder, tokenizer2!, weights.TextEncoder2!, device, options.DType, forceZerosForEmptyPrompt)
            : new ClipTextConditioner(tokenizer, weights.TextEncoder, device, options.DType);
        return Assemble(family, conditioner, weights, schedulerConfig, options, loadWarnings);
    }

    /// <summary>The UNet denoiser and the VAE with its latent format around <paramref name="conditioner"/> (SD, SDXL and the
    /// SDXL refiner alike).</summary>
    protected static ModelComponents Assemble(ModelFamily family, ITextConditioner conditioner, PipelineWeights weights, SchedulerConfig schedulerConfig,
        LoadOptions options, IReadOnlyList<string>? loadWarnings)
    {
        var device = new Device(options.Device);
        var vae = (AutoencoderKL)weights.Vae.Module;
        var format = new LatentFormat(vae.Config.LatentChannels, vae.Config.ScaleFactor, vae.Config.ScalingFactor);
        return new ModelComponents
        {
            Family = family,
            Conditioner = conditioner,
            Denoiser = new UNetDenoiser(weights.Unet, options.DType),
            Vae = new VaeCodec(weights.Vae, format, device, options.DType),
            SchedulerConfig = schedulerConfig,
            LoadWarnings = loadWarnings ?? [],
        };
    }

    protected static void CheckVocabulary(DiffusersFolder folder, string tokenizerName, ClipTokenizer tokenizer, string encoderName, ClipTextModel encoder)
    {
        if (tokenizer.VocabSize > encoder.Config.VocabSize)
            throw new InvalidDataException($"{Path.Combine(folder.Component(tokenizerName), "vocab.json")} has {tokenizer.VocabSize} tokens but the text encoder " +
                $"embeds {encoder.Config.VocabSize} ({encoderName}/config.json vocab_size): the tokenizer belongs to another model.");
    }
}
