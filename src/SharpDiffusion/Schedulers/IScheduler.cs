using static TorchSharp.torch;

namespace SharpDiffusion.Schedulers;

/// <summary>
/// A diffusers-style noise scheduler: <c>SetTimesteps</c>, <c>ScaleModelInput</c>, <c>Step</c>.
/// Schedulers know nothing about models; any scheduler drops into any pipeline.
/// </summary>
public interface IScheduler
{
    /// <summary>The diffusers class name, e.g. <c>LMSDiscreteScheduler</c>.</summary>
    string Name { get; }

    /// <summary>The configuration this instance was built from (scheduler_config.json plus overrides).</summary>
    SchedulerConfig Config { get; }

    /// <summary>diffusers' <c>order</c>: how many model evaluations one logical step takes (Heun: 2).</summary>
    int Order { get; }

    /// <summary>Timesteps after <see cref="SetTimesteps"/>, one per <see cref="Step"/> call, as float32 values
    /// (whole numbers for integer schedules, fractional for LMS/Euler/Heun/KDPM2).</summary>
    IReadOnlyList<float> Timesteps { get; }

    /// <summary>Factor applied to the initial N(0,1) latents (σ_max, sqrt(σ_max²+1) or 1).</summary>
    float InitNoiseSigma { get; }

    void SetTimesteps(int numInferenceSteps);

    /// <summary><see cref="SetTimesteps(int)"/> with the call-dependent inputs of flow-matching schedules (μ of the
    /// resolution-dependent shift, or the pipeline's own σ's); other schedulers refuse non-empty options.</summary>
    void SetTimesteps(int numInferenceSteps, TimestepOptions options);

    Tensor ScaleModelInput(Tensor sample, float timestep);

    /// <summary>One denoising step; returns prev_sample. Ancestral/SDE samplers draw noise from
    /// <paramref name="generator"/> (the pipeline's seeded CPU generator), in diffusers' order.</summary>
    Tensor Step(Tensor modelOutput, float timestep, Tensor sample, Generator? generator = null);

    /// <summary>The noisy sample x_t for a clean sample x_0 and noise ε at <paramref name="timestep"/> (one of
    /// <see cref="Timesteps"/>): x_0 + σ_t·ε for σ schedulers, √ᾱ_t·x_0 + √(1-ᾱ_t)·ε otherwise (img2img).</summary>
    Tensor AddNoise(Tensor original, Tensor noise, float timestep);

    /// <summary>The noise levels σ after <see cref="SetTimesteps"/> for k-diffusion style schedulers
    /// (LMS, Euler, Heun, KDPM2, DPM-Solver, UniPC); null for DDIM/DDPM/PNDM.</summary>
    IReadOnlyList<float>? Sigmas { get; }
}

/// <summary>What diffusers' <c>set_timesteps(..., sigmas=, mu=)</c> takes besides the step count.</summary>
public sealed record TimestepOptions
{
    public static TimestepOptions None { get; } = new();

    /// <summary>μ = ln of the shift that <c>use_dynamic_shifting</c> applies, linear in the image's token count
    /// (<see cref="FlowMatchEulerDiscreteScheduler.CalculateShift"/>).</summary>
    public double? Mu { get; init; }

    /// <summary>The unshifted σ's, one per step, descending (Flux passes linspace(1, 1/n, n)); null: spaced from the
    /// config's σ range.</summary>
    public IReadOnlyList<double>? Sigmas { get; init; }
}
