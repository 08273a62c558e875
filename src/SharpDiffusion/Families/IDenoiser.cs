using SharpDiffusion.Conditioning;
using SharpDiffusion.Loading;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Schedulers;
using static TorchSharp.torch;

namespace SharpDiffusion.Families;

/// <summary>
/// A family's loaded denoising network as the shared loop sees it (SD 1.x/2.x/XL: the UNet; SD3: the MMDiT): what it
/// accepts (<see cref="Validate"/>), how its timesteps are set, and one run per call (<see cref="Start"/>) that holds
/// what lives as long as a generation (DeepCache's features, later ControlNet residuals).
/// </summary>
public interface IDenoiser
{
    /// <summary>Its weights, in memory while a run needs them (<see cref="LoadOptions.LowMemory"/>).</summary>
    ComponentWeights Weights { get; }

    /// <summary>Whether guidance's unconditional and conditional rows go through one batched call [uncond; cond]; when
    /// false the loop makes two calls of B rows each.</summary>
    bool BatchesGuidance { get; }

    /// <summary>Channels the network takes: the latent format's, or more (inpainting UNets: + mask + masked image latents).</summary>
    long InChannels { get; }

    /// <summary>diffusers' default size in latent pixels (a UNet's sample_size).</summary>
    int DefaultSampleSize { get; }

    /// <summary>Channels of its widest activations at full latent resolution (the memory estimate's unit).</summary>
    long FullResolutionChannels { get; }

    /// <summary>Refuses, in one line, what the options ask of this network that it cannot do.</summary>
    void Validate(GenerationOptions options);

    /// <summary>One generation's use of the network.</summary>
    IDenoiserRun Start(GenerationOptions options);

    /// <summary>The scheduler's timesteps for a run on latents of <paramref name="latentShape"/> [B, C, h, w]; a family whose
    /// schedule depends on the image (Flux's mu from the token count) says so here.</summary>
    void SetTimesteps(IScheduler scheduler, int steps, long[] latentShape) => scheduler.SetTimesteps(steps);

    /// <summary>The classifier-free guidance the loop applies for these options: diffusers' guidance_scale &gt; 1 batches
    /// [uncond; cond]. A guidance-distilled network (Flux.1 dev) takes the scale as an input instead and runs unguided.</summary>
    GuidanceSettings Guidance(GenerationOptions options) => new(options.GuidanceScale, options.GuidanceRescale);

    /// <summary>The guidance the infotext records: A1111's "CFG scale" and, for a guidance-distilled network, Forge's
    /// "Distilled CFG Scale" (null: none).</summary>
    InfoTextGuidance InfoGuidance(GenerationOptions options) => new(options.GuidanceScale, null);

    /// <summary>How the clean latents x̂₀ follow from the network's output with this scheduler (previews only).</summary>
    ICleanEstimate CleanEstimate(IScheduler scheduler) => new DenoisedEstimate(scheduler);
}

/// <summary>One generation's use of a denoiser; disposing it frees what the run kept.</summary>
public interface IDenoiserRun : IDisposable
{
    /// <summary>The network's prediction (ε, v or the flow velocity, as it was trained) [B, C, h, w] float32.</summary>
    Tensor Predict(DenoiserInput input);
}

/// <summary>One call of the network: the model input after the scheduler's scaling and the task's extra channels
/// [B, C', h, w] float32, the timestep (a float: σ schedulers visit fractional ones), the text conditioning of the same
/// rows, and the step index (DeepCache decides from it which steps reuse features).</summary>
public sealed record DenoiserInput(Tensor HiddenStates, float Timestep, TextConditioning Conditioning, int Step)
{
    /// <summary>How many steps the loop runs (0: unknown); ControlNet's start/end are fractions of it.</summary>
    public int StepCount { get; init; }
}

/// <summary>The guidance an infotext writes: "CFG scale: <paramref name="CfgScale"/>" and, when not null,
/// "Distilled CFG Scale: <paramref name="Distilled"/>" right after it (Forge's processing.py order).</summary>
public readonly record struct InfoTextGuidance(double CfgScale, double? Distilled);
