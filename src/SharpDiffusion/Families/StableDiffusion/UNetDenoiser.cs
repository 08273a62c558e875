using SharpDiffusion.Loading;
using SharpDiffusion.Models.UNet;
using SharpDiffusion.Pipelines;
using static TorchSharp.torch;

namespace SharpDiffusion.Families.StableDiffusion;

/// <summary>
/// SD 1.x/2.x/XL's denoiser: <see cref="UNet2DConditionModel"/> in the compute dtype, guidance batched [uncond; cond],
/// with DeepCache (<see cref="GenerationOptions.DeepCacheInterval"/>) as per-run state.
/// </summary>
public sealed class UNetDenoiser(ComponentWeights weights, ScalarType dtype) : IDenoiser
{
    public UNet2DConditionModel Unet => (UNet2DConditionModel)weights.Module;
    public ComponentWeights Weights => weights;
    public bool BatchesGuidance => true;
    public long InChannels => Unet.Config.InChannels;
    public int DefaultSampleSize => Unet.Config.SampleSize ?? 64;
    public long FullResolutionChannels => Unet.Config.BlockOutChannels[0];

    public void Validate(GenerationOptions o)
    {
        var c = Unet.Config;
        if (o.Task == GenerationTask.Inpainting && c.InChannels is not (4 or 9))
            throw new NotSupportedException($"Inpainting needs a UNet with 9 input channels (an inpainting model) or 4; this one has {c.InChannels}.");
        if (o.Task != GenerationTask.Inpainting && c.InChannels != 4)
            throw new ArgumentException($"This is an inpainting model (UNet in_channels {c.InChannels}): give an image and a mask.");
        if (c.AdditionEmbedType == "text_time" && o.PooledPromptEmbeds is { } pooled && pooled.shape[1] != c.PooledTextDim)
            throw new ArgumentException($"Pooled prompt embeddings have {pooled.shape[1]} channels; this SDXL model takes {c.PooledTextDim}.");
        if (o.PromptEmbeds is { } pe && pe.shape[2] != c.CrossAttentionDim[0])
            throw new ArgumentException($"Prompt embeddings have {pe.shape[2]} channels; this model's UNet takes {c.CrossAttentionDim[0]}.");
    }

    public IDenoiserRun Start(GenerationOptions options) =>
        new Run(Unet, dtype, options.DeepCacheInterval > 1 ? new DeepFeatureCache(options.DeepCacheInterval) : null);

    sealed class Run(UNet2DConditionModel unet, ScalarType dtype, DeepFeatureCache? cache) : IDenoiserRun
    {
        public Tensor Predict(DenoiserInput input)
        {
            using var scope = NewDisposeScope();
            var output = unet.Forward(input.HiddenStates.to(dtype), input.Timestep, input.Conditioning, cache, cache?.CanReuse(input.Step) ?? false);
            return output.to(ScalarType.Float32).MoveToOuterDisposeScope();
        }

        public void Dispose() => cache?.Dispose();
    }
}
