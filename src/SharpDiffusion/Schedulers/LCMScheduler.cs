using static TorchSharp.torch;

namespace SharpDiffusion.Schedulers;

/// <summary>
/// Latent consistency models (Luo et al. 2023, arXiv 2310.04378): the model's x̂_0 is mapped through the consistency
/// boundary condition, denoised = c_out·x̂_0 + c_skip·x_t with c_skip = σ_d²/((t·s)² + σ_d²), c_out = t·s/((t·s)² + σ_d²)^½
/// (σ_d = 0.5, s = <c>timestep_scaling</c>), then noised afresh to the next timestep: x_{t'} = √ᾱ_{t'}·denoised + √(1-ᾱ_{t'})·z.
/// Every step but the last draws z from the generator (continuing the pipeline's stream). Timesteps are a few of the
/// distillation's <c>original_inference_steps</c> (<see cref="TimestepSpacing.ConsistencyDescending"/>).
/// </summary>
public sealed class LCMScheduler : SchedulerBase
{
    /// <summary>σ_data of the consistency parameterisation.</summary>
    const float SigmaData = 0.5f;

    readonly int _originalInferenceSteps;
    readonly float _timestepScaling;
    readonly float _finalAlphaCumprod;
    readonly SampleClipping _clipping;

    public LCMScheduler(SchedulerConfig config)
        : base(config, NoiseSchedule.FromConfig(config, 0.00085, 0.012, ZeroSnr.Rescale, defaultBetaSchedule: "scaled_linear"))
    {
        _originalInferenceSteps = config.GetInt("original_inference_steps", 50);
        _timestepScaling = (float)config.GetDouble("timestep_scaling", 10.0);
        _finalAlphaCumprod = config.GetBool("set_alpha_to_one", true) ? 1f : NoiseSchedule.AlphasCumprod[0];
        _clipping = SampleClipping.FromConfig(config, defaultClipSample: false);
    }

    public override string Name => "LCMScheduler";
    public override float InitNoiseSigma => 1f;

    protected override float[] ComputeTimesteps(int n) =>
        [.. TimestepSpacing.ConsistencyDescending(NumTrainTimesteps, _originalInferenceSteps, n, Name).Select(t => (float)t)];

    public override Tensor ScaleModelInput(Tensor sample, float timestep)
    {
        CurrentStepIndex(timestep);
        return sample.alias();
    }

    /// <summary>(c_skip, c_out) at integer timestep t, float32 as diffusers computes them on the timestep tensor.</summary>
    public static (float CSkip, float COut) BoundaryScalings(int t, float timestepScaling)
    {
        float scaled = t * timestepScaling;
        float denominator = scaled * scaled + SigmaData * SigmaData;
        return (SigmaData * SigmaData / denominator, scaled / MathF.Sqrt(denominator));
    }

    public override Tensor Step(Tensor modelOutput, float timestep, Tensor sample, Generator? generator = null)
    {
        int i = CurrentStepIndex(timestep);
        int t = (int)timestep;
        bool last = i == Timesteps.Count - 1;
        // The last step's "next" timestep is its own (diffusers), unused since nothing is re-noised there.
        int prevT = last ? t : (int)Timesteps[i + 1];
        var (alphaProd, alphaProdPrev, _, _) = AlphaMath.StepAlphas(NoiseSchedule, t, prevT, _finalAlphaCumprod);
        var (cSkip, cOut) = BoundaryScalings(t, _timestepScaling);

        using var scope = NewDisposeScope();
        var (predOriginal, _) = AlphaMath.Predict(PredictionType, modelOutput, sample, alphaProd);
        predOriginal = _clipping.Apply(predOriginal);
        var denoised = cOut * predOriginal + cSkip * sample;
        // Re-noised to the next timestep: √ᾱ_{t'}·denoised + √(1-ᾱ_{t'})·z.
        var prevSample = last ? denoised : AlphaMath.AddNoise(denoised, Noise.RandnLike(modelOutput, generator), alphaProdPrev);
        StepIndex = i + 1;
        return prevSample.MoveToOuterDisposeScope();
    }

    /// <summary>√ᾱ_t·x_0 + √(1-ᾱ_t)·ε.</summary>
    public override Tensor AddNoise(Tensor original, Tensor noise, float timestep) =>
        AlphaMath.AddNoise(original, noise, NoiseSchedule.AlphasCumprod[(int)Timesteps[RequireInSchedule(timestep)]]);
}
