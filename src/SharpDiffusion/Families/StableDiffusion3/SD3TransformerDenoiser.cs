using SharpDiffusion.Loading;
using SharpDiffusion.Models.Transformers;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Schedulers;
using static TorchSharp.torch;

namespace SharpDiffusion.Families.StableDiffusion3;

/// <summary>
/// SD3/SD3.5's denoiser: <see cref="SD3Transformer2DModel"/> in the compute dtype, predicting the flow velocity v.
/// The timestep is t as the scheduler gives it (σ·1000, a float) expanded to the batch; guidance is batched
/// [uncond; cond] (diffusers' do_classifier_free_guidance: guidance_scale > 1).
/// </summary>
public sealed class SD3TransformerDenoiser(ComponentWeights weights, ScalarType dtype) : IDenoiser
{
    public SD3Transformer2DModel Transformer => (SD3Transformer2DModel)weights.Module;
    public ComponentWeights Weights => weights;
    public bool BatchesGuidance => true;
    public long InChannels => Transformer.Config.InChannels;
    public int DefaultSampleSize => Transformer.Config.SampleSize;
    public long FullResolutionChannels => Transformer.Config.InnerDim;

    public void Validate(GenerationOptions o)
    {
        if (o.Task == GenerationTask.Inpainting)
            throw new NotSupportedException("Inpainting is not supported for SD3 models yet; use text-to-image or img2img (no mask).");
        if (o.Loras.Count > 0)
            throw new NotSupportedException("LoRAs are not supported for SD3 models yet; remove the --lora options.");
        if (o.DeepCacheInterval > 1)
            throw new NotSupportedException("DeepCache is for UNet models; SD3's transformer has no skip features to reuse: leave the interval at 1.");
        if (o.GuidanceRescale != 0)
            throw new NotSupportedException("guidance_rescale is not part of diffusers' SD3 pipelines; leave it at 0.");
    }

    public IDenoiserRun Start(GenerationOptions options) => new Run(Transformer, dtype);

    /// <summary>Flow matching: x̂₀ = x_t − σ·v.</summary>
    public ICleanEstimate CleanEstimate(IScheduler scheduler) => new FlowMatchCleanEstimate(scheduler);

    sealed class Run(SD3Transformer2DModel transformer, ScalarType dtype) : IDenoiserRun
    {
        public Tensor Predict(DenoiserInput input)
        {
            using var scope = NewDisposeScope();
            var x = input.HiddenStates.to(dtype);                                      // [B, C, h, w]
            var t = full([x.shape[0]], input.Timestep, dtype: ScalarType.Float32, device: x.device); // [B]: t.expand(batch), float32 as the scheduler's
            var c = input.Conditioning;
            var output = transformer.Forward(new SD3Transformer2DInput(x, t, c.EncoderHiddenStates.to(dtype), c.Pooled!.to(dtype)));
            return output.to(ScalarType.Float32).MoveToOuterDisposeScope();
        }

        public void Dispose() { }
    }
}
