using static TorchSharp.torch;

namespace SharpDiffusion.Schedulers;

/// <summary>
/// Ancestral Euler (k-diffusion's <c>sample_euler_ancestral</c>): split the move to σ_{i+1} into a
/// deterministic Euler step to σ_down and fresh noise of size σ_up, with
/// σ_up = √(σ_{i+1}²(σ_i² - σ_{i+1}²)/σ_i²), σ_down = √(σ_{i+1}² - σ_up²).
/// </summary>
public sealed class EulerAncestralDiscreteScheduler : SchedulerBase
{
    readonly string _spacing;
    readonly int _stepsOffset;
    float[] _sigmas = [];

    public EulerAncestralDiscreteScheduler(SchedulerConfig config) : base(config, NoiseSchedule.FromConfig(config, zeroSnr: ZeroSnr.RescaleWithSigmaFloor))
    {
        _spacing = config.GetString("timestep_spacing", TimestepSpacing.Linspace);
        _stepsOffset = config.GetInt("steps_offset", 0);
        RequireEpsilonOrVPrediction();
    }

    public override string Name => "EulerAncestralDiscreteScheduler";
    public override IReadOnlyList<float>? Sigmas => _sigmas;
    public override float InitNoiseSigma => SigmaMath.InitNoiseSigma(_sigmas, _spacing);

    protected override float[] ComputeTimesteps(int n)
    {
        (var timesteps, _sigmas) = SigmaMath.DiscreteSchedule(NoiseSchedule, _spacing, n, _stepsOffset,
            useKarrasSigmas: false, roundKarrasTimesteps: false);
        return timesteps;
    }

    public override Tensor ScaleModelInput(Tensor sample, float timestep) =>
        SigmaMath.ScaleInput(sample, _sigmas[CurrentStepIndex(timestep)]);

    public override Tensor Step(Tensor modelOutput, float timestep, Tensor sample, Generator? generator = null)
    {
        int i = CurrentStepIndex(timestep);
        float sigma = _sigmas[i], sigmaTo = _sigmas[i + 1];
        using var scope = NewDisposeScope();
        sample = sample.to(ScalarType.Float32);

        var predOriginal = SigmaMath.PredictOriginal(PredictionType, modelOutput, sample, sigma);
        float sigmaUp = MathF.Sqrt(sigmaTo * sigmaTo * (sigma * sigma - sigmaTo * sigmaTo) / (sigma * sigma));
        float sigmaDown = MathF.Sqrt(sigmaTo * sigmaTo - sigmaUp * sigmaUp);

        var derivative = (sample - predOriginal) / sigma;
        float dt = sigmaDown - sigma;
        var prevSample = sample + derivative * dt;
        prevSample = prevSample + Noise.RandnLike(modelOutput, generator) * sigmaUp;
        StepIndex = i + 1;
        return prevSample.to(modelOutput.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>x_0 + σ(t)·ε.</summary>
    public override Tensor AddNoise(Tensor original, Tensor noise, float timestep) =>
        SigmaMath.AddNoise(original, noise, _sigmas[IndexForTimestep(timestep)]);
}
