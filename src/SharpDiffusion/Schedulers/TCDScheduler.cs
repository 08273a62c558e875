using static TorchSharp.torch;

namespace SharpDiffusion.Schedulers;

/// <summary>
/// Trajectory consistency distillation (Zheng et al. 2024, arXiv 2402.19159), strategic stochastic sampling: from x_t
/// the model's (x̂_0, ε̂) give the point at the intermediate s = floor((1-γ)·t') on the way to the next timestep t',
/// x_s = √ᾱ_s·x̂_0 + √(1-ᾱ_s)·ε̂, which is then noised forward to t': x_{t'} = √(ᾱ_{t'}/ᾱ_s)·x_s + √(1-ᾱ_{t'}/ᾱ_s)·z.
/// γ (<see cref="Eta"/>) = 0 is deterministic; every step but the last draws z when γ &gt; 0. Same schedule as LCM.
/// </summary>
public sealed class TCDScheduler : SchedulerBase
{
    readonly int _originalInferenceSteps;
    float _eta = 0.3f;

    public TCDScheduler(SchedulerConfig config)
        : base(config, NoiseSchedule.FromConfig(config, 0.00085, 0.012, ZeroSnr.Rescale, defaultBetaSchedule: "scaled_linear"))
    {
        // set_alpha_to_one and the clipping keys are in diffusers' config but never used by its step (the next
        // timestep is never below 0, and x̂_0 is not clipped): not options here.
        _originalInferenceSteps = config.GetInt("original_inference_steps", 50);
        Eta = (float)config.GetDouble("eta", 0.3);   // not a diffusers config key: the pipeline's eta (--eta)
    }

    public override string Name => "TCDScheduler";
    public override float InitNoiseSigma => 1f;

    /// <summary>γ in [0, 1], the share of each step spent going back toward noise (diffusers' <c>step(eta=0.3)</c>);
    /// the config key <c>eta</c> (<c>--eta</c>) sets it.</summary>
    public float Eta
    {
        get => _eta;
        set => _eta = value is >= 0f and <= 1f ? value
            : throw new ArgumentOutOfRangeException(nameof(Eta), $"TCDScheduler: eta (gamma) must be between 0 and 1, got {value}.");
    }

    protected override float[] ComputeTimesteps(int n) =>
        [.. TimestepSpacing.ConsistencyDescending(NumTrainTimesteps, _originalInferenceSteps, n, Name).Select(t => (float)t)];

    public override Tensor ScaleModelInput(Tensor sample, float timestep)
    {
        CurrentStepIndex(timestep);
        return sample.alias();
    }

    public override Tensor Step(Tensor modelOutput, float timestep, Tensor sample, Generator? generator = null)
    {
        int i = CurrentStepIndex(timestep);
        int t = (int)timestep;
        bool last = i == Timesteps.Count - 1;
        int prevT = last ? 0 : (int)Timesteps[i + 1];
        int s = (int)MathF.Floor((1f - _eta) * prevT);   // float32 as the timestep tensor's product
        float alphaProd = NoiseSchedule.AlphasCumprod[t];
        float alphaProdPrev = NoiseSchedule.AlphasCumprod[prevT];
        float alphaProdS = NoiseSchedule.AlphasCumprod[s];

        using var scope = NewDisposeScope();
        var (predOriginal, predEpsilon) = AlphaMath.Predict(PredictionType, modelOutput, sample, alphaProd);
        var predNoised = AlphaMath.AddNoise(predOriginal, predEpsilon, alphaProdS);   // x_s
        // Forward from s to t' has ᾱ_{t'}/ᾱ_s as its own ᾱ.
        var prevSample = _eta > 0 && !last
            ? AlphaMath.AddNoise(predNoised, Noise.RandnLike(modelOutput, generator), alphaProdPrev / alphaProdS)
            : predNoised;
        StepIndex = i + 1;
        return prevSample.MoveToOuterDisposeScope();
    }

    /// <summary>√ᾱ_t·x_0 + √(1-ᾱ_t)·ε.</summary>
    public override Tensor AddNoise(Tensor original, Tensor noise, float timestep) =>
        AlphaMath.AddNoise(original, noise, NoiseSchedule.AlphasCumprod[(int)Timesteps[RequireInSchedule(timestep)]]);
}
