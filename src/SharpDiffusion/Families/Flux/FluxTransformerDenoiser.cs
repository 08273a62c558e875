using SharpDiffusion.Families.StableDiffusion3;
using SharpDiffusion.Loading;
using SharpDiffusion.Models.Transformers;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Schedulers;
using static TorchSharp.torch;

namespace SharpDiffusion.Families.Flux;

/// <summary>
/// Flux.1's denoiser: <see cref="FluxTransformer2DModel"/> in the compute dtype on packed latents
/// (<see cref="FluxLatents"/>), predicting the flow velocity. As diffusers' FluxPipeline: no classifier-free guidance
/// batch (dev is guidance-distilled: the scale goes in as the guidance embedding, [B] float32; schnell has none), the
/// transformer gets t/1000 in float32 and the ids of the text (zeros) and image tokens, and the flow-matching schedule is
/// σ = linspace(1, 1/n, n) shifted by μ = calculate_shift(token count) when the scheduler's shift is dynamic. Img2img
/// (FluxImg2ImgPipeline) keeps that schedule's last int(n·strength) steps and starts from σ·ε + (1 − σ)·x₀.
/// </summary>
public sealed class FluxTransformerDenoiser(ComponentWeights weights, ScalarType dtype) : IDenoiser
{
    public FluxTransformer2DModel Transformer => (FluxTransformer2DModel)weights.Module;
    public ComponentWeights Weights => weights;
    public bool BatchesGuidance => true; // moot: Guidance below never enables the loop's CFG
    /// <summary>The latent channels: a packed token holds a 2×2 patch of them.</summary>
    public long InChannels => Transformer.Config.InChannels / 4;
    /// <summary>diffusers' default_sample_size 64 packed tokens a side = 128 latent pixels (1024² for Flux.1).</summary>
    public int DefaultSampleSize => 128;
    public long FullResolutionChannels => Transformer.Config.InnerDim / 4; // D per token of a 2×2 patch

    public void Validate(GenerationOptions o)
    {
        // Img2img is FluxImg2ImgPipeline: the shared ImageToImage start (strength cuts the schedule set above, scale_noise).
        if (o.Task == GenerationTask.Inpainting)
            throw new NotSupportedException("Flux models run text-to-image and img2img only for now; remove the mask.");
        if (o.DeepCacheInterval > 1)
            throw new NotSupportedException("DeepCache is for UNet models; Flux's transformer has no skip features to reuse: leave the interval at 1.");
        if (o.GuidanceRescale != 0)
            throw new NotSupportedException("guidance_rescale is not part of diffusers' Flux pipeline; leave it at 0.");
    }

    /// <summary>Never the loop's classifier-free guidance: dev embeds the scale, schnell ignores it.</summary>
    public GuidanceSettings Guidance(GenerationOptions options) => new(1.0);

    /// <summary>As Forge writes Flux: "CFG scale: 1" (no classifier-free guidance), and for dev the embedded scale as
    /// "Distilled CFG Scale"; schnell ignores its guidance and writes none.</summary>
    public InfoTextGuidance InfoGuidance(GenerationOptions options) =>
        new(1.0, Transformer.Config.GuidanceEmbeds ? options.GuidanceScale : null);

    /// <summary>FluxPipeline's schedule: σ's linspace(1, 1/n, n), μ from the packed token count (h/2)·(w/2).</summary>
    public void SetTimesteps(IScheduler scheduler, int steps, long[] latentShape)
    {
        if (scheduler is not FlowMatchEulerDiscreteScheduler flow)
        {
            scheduler.SetTimesteps(steps);
            return;
        }
        long tokens = latentShape[2] / 2 * (latentShape[3] / 2);
        flow.SetTimesteps(steps, new TimestepOptions { Sigmas = FlowMatchEulerDiscreteScheduler.FluxSigmas(steps), Mu = flow.Mu(tokens) });
    }

    /// <summary>Flow matching: x̂₀ = x_t − σ·v.</summary>
    public ICleanEstimate CleanEstimate(IScheduler scheduler) => new FlowMatchCleanEstimate(scheduler);

    public IDenoiserRun Start(GenerationOptions options) => new Run(Transformer, dtype, (float)options.GuidanceScale);

    /// <summary>The transformer's inputs for latents [B, C, h, w] at the scheduler's timestep t, as FluxPipeline builds them.</summary>
    public static FluxTransformer2DInput TransformerInput(FluxTransformer2DModel transformer, Tensor latents, float t, Tensor t5, Tensor pooled, float guidanceScale, ScalarType dtype)
    {
        long b = latents.shape[0];
        var device = latents.device;
        var timestep = full([b], t, dtype: ScalarType.Float32, device: device) / 1000;  // t.expand(B) / 1000, float32
        var guidance = transformer.Config.GuidanceEmbeds ? full([b], guidanceScale, dtype: ScalarType.Float32, device: device) : null;
        return new FluxTransformer2DInput(FluxLatents.Pack(latents.to(dtype)), timestep, t5.to(dtype), pooled.to(dtype),
            FluxLatents.ImageIds(latents.shape[2], latents.shape[3], device), FluxLatents.TextIds(t5.shape[1], device), guidance);
    }

    sealed class Run(FluxTransformer2DModel transformer, ScalarType dtype, float guidanceScale) : IDenoiserRun
    {
        public Tensor Predict(DenoiserInput input)
        {
            using var scope = NewDisposeScope();
            var x = input.HiddenStates;                                                     // [B, C, h, w]
            var c = input.Conditioning;
            var tokens = transformer.Forward(TransformerInput(transformer, x, input.Timestep, c.EncoderHiddenStates, c.Pooled!, guidanceScale, dtype));
            return FluxLatents.Unpack(tokens.to(ScalarType.Float32), x.shape[2], x.shape[3]).MoveToOuterDisposeScope();
        }

        public void Dispose() { }
    }
}
