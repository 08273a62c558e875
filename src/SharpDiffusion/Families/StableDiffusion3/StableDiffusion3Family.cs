using SharpDiffusion.Conditioning;
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

namespace SharpDiffusion.Families.StableDiffusion3;

/// <summary>
/// Stable Diffusion 3 / 3.5 (diffusers' StableDiffusion3Pipeline): CLIP-L, OpenCLIP bigG and an optional T5
/// (<see cref="Sd3TextConditioner"/>), the MMDiT (<see cref="SD3TransformerDenoiser"/>), the 16-channel VAE whose
/// latents are x = (z − shift_factor)·scaling_factor, patch 2, and the model's FlowMatchEulerDiscreteScheduler config.
/// A folder whose model_index.json lists text_encoder_3 as null (diffusers' text_encoder_3=None) runs without T5.
/// </summary>
public sealed class StableDiffusion3Family : ModelFamily
{
    public static StableDiffusion3Family Instance { get; } = new();

    public override string Name => "SD3/SD3.5";

    public override IReadOnlyList<string> PipelineClasses { get; } = ["StableDiffusion3Pipeline", "StableDiffusion3Img2ImgPipeline"];

    /// <summary>The components of <paramref name="folder"/>: tokenizers and scheduler config first (small, and the usual
    /// reason a download is incomplete), then the text encoders, the transformer and the VAE.</summary>
    public override ModelComponents Load(DiffusersFolder folder, LoadOptions options)
    {
        var tokenizer = ClipTokenizer.FromDirectory(folder.Component("tokenizer"));
        var tokenizer2 = ClipTokenizer.FromDirectory(folder.Component("tokenizer_2"));
        bool hasT5 = folder.ComponentClass("text_encoder_3") is not null;
        var tokenizer3 = hasT5 ? T5Tokenizer.FromDirectory(folder.Component("tokenizer_3")) : null;
        var schedulerConfig = SchedulerConfig.Load(Path.Combine(folder.Component("scheduler"), "scheduler_config.json"));
        return LoadComponents(folder, options, load =>
        {
            var encoder = load(ComponentLoader.TextEncoder, "text_encoder");
            var encoder2 = load(ComponentLoader.TextEncoder, "text_encoder_2");
            var encoder3 = hasT5 ? load(T5EncoderModel.Weights, "text_encoder_3") : null;
            var transformer = load(ComponentLoader.SD3Transformer, "transformer");
            var vae = load(ComponentLoader.Vae, "vae");
            return Assemble(c => Path.Combine(folder.Component(c), "config.json"), tokenizer, encoder, tokenizer2, encoder2, tokenizer3, encoder3, transformer, vae,
                schedulerConfig, options);
        });
    }

    /// <summary>The components of a Stability single file and its text encoder files (<see cref="Sd3SingleFileLoader"/>);
    /// they are freed if assembling refuses them.</summary>
    public static ModelComponents FromSingleFile(Sd3SingleFileComponents c, LoadOptions options)
    {
        try
        {
            string where = c.Checkpoint.Path;
            return Instance.Assemble(_ => where, c.Tokenizer, c.TextEncoder, c.Tokenizer2, c.TextEncoder2, c.Tokenizer3, c.TextEncoder3, c.Transformer, c.Vae,
                c.SchedulerConfig, options);
        }
        catch
        {
            foreach (var w in c.All) w.Module.Dispose();
            throw;
        }
    }

    /// <param name="configOf">where a component's config is (for errors): its config.json, or the single file.</param>
    ModelComponents Assemble(Func<string, string> configOf, ClipTokenizer tokenizer, ComponentWeights encoder, ClipTokenizer tokenizer2, ComponentWeights encoder2,
        T5Tokenizer? tokenizer3, ComponentWeights? encoder3, ComponentWeights transformerWeights, ComponentWeights vaeWeights,
        SchedulerConfig schedulerConfig, LoadOptions options)
    {
        var transformer = ((SD3Transformer2DModel)transformerWeights.Module).Config;
        var vae = ((AutoencoderKL)vaeWeights.Module).Config;
        if (vae.LatentChannels != transformer.InChannels)
            throw new InvalidDataException($"{configOf("vae")} latent_channels {vae.LatentChannels} is not the transformer's " +
                $"in_channels {transformer.InChannels}: the VAE belongs to another model.");
        int clipPooled = ((ClipTextModel)encoder.Module).Config.ProjectionDim.GetValueOrDefault() + ((ClipTextModel)encoder2.Module).Config.ProjectionDim.GetValueOrDefault();
        if (clipPooled != transformer.PooledProjectionDim)
            throw new InvalidDataException($"{configOf("transformer")} pooled_projection_dim {transformer.PooledProjectionDim} is not " +
                $"the two CLIP projections together ({clipPooled}): the text encoders belong to another model.");
        var device = new Device(options.Device);
        var format = new LatentFormat(vae.LatentChannels, vae.ScaleFactor, vae.ScalingFactor, vae.ShiftFactor, transformer.PatchSize);
        return new ModelComponents
        {
            Family = this,
            Conditioner = new Sd3TextConditioner(tokenizer, encoder, tokenizer2, encoder2, tokenizer3, encoder3, transformer.JointAttentionDim, device, options.DType),
            Denoiser = new SD3TransformerDenoiser(transformerWeights, options.DType),
            Vae = new VaeCodec(vaeWeights, format, device, options.DType),
            SchedulerConfig = schedulerConfig,
        };
    }
}
