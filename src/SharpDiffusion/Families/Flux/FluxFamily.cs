using SharpDiffusion.Conditioning;
using SharpDiffusion.Configuration;
using SharpDiffusion.Loading;
using SharpDiffusion.Loading.SingleFile;
using SharpDiffusion.Models.Clip;
using SharpDiffusion.Models.T5;
using SharpDiffusion.Models.Transformers;
using SharpDiffusion.Models.Vae;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Schedulers;
using SharpDiffusion.Text;
using static TorchSharp.torch;

namespace SharpDiffusion.Families.Flux;

/// <summary>
/// Flux.1 dev and schnell (diffusers' FluxPipeline): CLIP-L's pooled output and T5's sequence
/// (<see cref="FluxTextConditioner"/>), the rectified-flow transformer on packed 2×2 latent patches
/// (<see cref="FluxTransformerDenoiser"/>), the 16-channel VAE whose latents are x = (z − shift_factor)·scaling_factor
/// (0.1159, 0.3611), sizes a multiple of 2 × the VAE factor, and the model's FlowMatchEulerDiscreteScheduler config
/// (dev: dynamic shift; schnell: shift 1). <see cref="LoadOptions.TransformerFile"/> replaces the folder's transformer
/// with a BFL single file (safetensors, float8, GGUF), decoded to the compute dtype.
/// </summary>
public sealed class FluxFamily : ModelFamily
{
    public static FluxFamily Instance { get; } = new();

    public override string Name => "Flux.1";

    public override IReadOnlyList<string> PipelineClasses { get; } = ["FluxPipeline"];

    /// <summary>The components of <paramref name="folder"/>: tokenizers and scheduler config first, then the text encoders,
    /// the transformer (the folder's, or <see cref="LoadOptions.TransformerFile"/>) and the VAE.</summary>
    public override ModelComponents Load(DiffusersFolder folder, LoadOptions options)
    {
        var tokenizer = ClipTokenizer.FromDirectory(folder.Component("tokenizer"));
        var tokenizer2 = T5Tokenizer.FromDirectory(folder.Component("tokenizer_2"));
        var schedulerConfig = SchedulerConfig.Load(Path.Combine(folder.Component("scheduler"), "scheduler_config.json"));
        return LoadComponents(folder, options, load =>
        {
            var encoder = load(ComponentLoader.TextEncoder, "text_encoder");
            var encoder2 = load(T5EncoderModel.Weights, "text_encoder_2");
            var transformer = options.TransformerFile is { } file ? load(TransformerFile(file), "transformer") : load(ComponentLoader.FluxTransformer, "transformer");
            var vae = load(ComponentLoader.Vae, "vae");
            return Assemble(Path.Combine(folder.Component("vae"), "config.json"), tokenizer, encoder, tokenizer2, encoder2, transformer, vae, schedulerConfig, options);
        });
    }

    /// <summary>A Flux pipeline from component files (<see cref="FluxComponentFiles"/>: flux1-*.safetensors/.gguf, clip_l,
    /// t5xxl, ae.safetensors), each read as its own loader reads it (<see cref="Sd3SingleFileLoader"/>'s text encoders,
    /// <see cref="ComponentLoader.FluxTransformerFile"/>, the VAE as <c>--vae</c> reads a file). If any step fails, the
    /// components already built are freed.</summary>
    public static ModelComponents FromComponentFiles(FluxComponentFiles files, LoadOptions options)
    {
        var tokenizer = files.ClipTokenizerFolder is { } folder ? ClipTokenizer.FromDirectory(folder) : ClipTokenizer.Bundled(ClipTokenizer.BundledVariant.Sd1);
        var tokenizer2 = T5Tokenizer.FromDirectory(files.T5TokenizerFolder);
        var flat = new WeightPlacement(options.DType, new Device(options.Device), false);
        var built = new List<ComponentWeights>();
        ComponentWeights Add(ComponentWeights w) { built.Add(w); return w; }
        try
        {
            var encoder = Add(Sd3SingleFileLoader.Clip(files.Clip, files.ClipConfig, options, flat));
            var encoder2 = Add(Sd3SingleFileLoader.T5(files.T5, files.T5Config, options, flat));
            var transformer = Add(ComponentLoader.FluxTransformerFile(files.TransformerPath, options, files.Transformer));
            var vae = Add(VaeCodec.LoadKLFile(files.VaePath, options, files.VaeConfig));
            return Instance.Assemble(files.VaeConfigSource, tokenizer, encoder, tokenizer2, encoder2, transformer, vae, files.SchedulerConfig, options);
        }
        catch
        {
            foreach (var w in built) w.Module.Dispose();
            throw;
        }
    }

    /// <summary>Loads <paramref name="file"/> in place of a folder's transformer; the folder's config.json, when there is one,
    /// gives what the weights cannot (the rotary axes) and must agree with them.</summary>
    static Func<string, LoadOptions, ComponentWeights> TransformerFile(string file) => (dir, options) =>
    {
        string config = Path.Combine(dir, "config.json");
        var folderConfig = File.Exists(config) ? FluxTransformer2DConfig.From(JsonConfig.Load(config)) : null;
        return ComponentLoader.FluxTransformerFile(file, options, folderConfig);
    };

    ModelComponents Assemble(string vaeConfig, ClipTokenizer tokenizer, ComponentWeights encoder, T5Tokenizer tokenizer2, ComponentWeights encoder2,
        ComponentWeights transformerWeights, ComponentWeights vaeWeights, SchedulerConfig schedulerConfig, LoadOptions options)
    {
        var transformer = ((FluxTransformer2DModel)transformerWeights.Module).Config;
        var vae = ((AutoencoderKL)vaeWeights.Module).Config;
        if (vae.LatentChannels * 4 != transformer.InChannels)
            throw new InvalidDataException($"{vaeConfig} latent_channels {vae.LatentChannels} × a 2×2 patch is not the transformer's " +
                $"in_channels {transformer.InChannels}: the VAE belongs to another model.");
        var device = new Device(options.Device);
        // The transformer packs 2×2 patches: sizes are multiples of 2 × the VAE factor (16 for Flux.1).
        var format = new LatentFormat(vae.LatentChannels, vae.ScaleFactor, vae.ScalingFactor, vae.ShiftFactor, PatchSize: 2);
        int maxSequenceLength = FluxDefaults.For(transformer.GuidanceEmbeds).MaxSequenceLength;
        return new ModelComponents
        {
            Family = this,
            Conditioner = new FluxTextConditioner(tokenizer, encoder, tokenizer2, encoder2, transformer.JointAttentionDim, transformer.PooledProjectionDim, maxSequenceLength, device),
            Denoiser = new FluxTransformerDenoiser(transformerWeights, options.DType),
            Vae = new VaeCodec(vaeWeights, format, device, options.DType),
            SchedulerConfig = schedulerConfig,
        };
    }
}
