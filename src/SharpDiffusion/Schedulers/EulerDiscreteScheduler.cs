using static TorchSharp.torch;

namespace SharpDiffusion.Schedulers;

/// <summary>
/// Euler's method on the probability-flow ODE dx/dσ = (x - x̂_0)/σ (Karras et al. 2022, Algorithm 2):
/// x_{i+1} = x_i + (σ_{i+1} - σ̂_i)·(x_i - x̂_0)/σ̂_i, with optional churn σ̂_i = σ_i(1+γ).
/// </summary>
public sealed class EulerDiscreteScheduler : SchedulerBase
{
    readonly string _spacing;
    readonly int _stepsOffset;
    readonly SigmaSchedule _sigmaSchedule;
    readonly double? _sigmaMin, _sigmaMax;
    readonly bool _continuousTimesteps;
    float[] _sigmas = [];

    public EulerDiscreteScheduler(SchedulerConfig config) : base(config, NoiseSchedule.FromConfig(config, zeroSnr: ZeroSnr.RescaleWithSigmaFloor))
    {
        _spacing = config.GetString("timestep_spacing", TimestepSpacing.Linspace);
        _stepsOffset = config.GetInt("steps_offset", 0);
        _sigmaSchedule = SigmaSchedule.FromConfig(config, Name);
        _sigmaMin = config.GetDoubleOrNull("sigma_min");
        _sigmaMax = config.GetDoubleOrNull("sigma_max");
        string interpolation = config.GetString("interpolation_type", "linear");
        if (interpolation != "linear")
            throw new NotSupportedException($"EulerDiscreteScheduler: interpolation_type '{interpolation}' is not supported (only 'linear').");
        string timestepType = config.GetString("timestep_type", "discrete");
        if (timestepType is not ("discrete" or "continuous"))
            throw new ArgumentException($"EulerDiscreteScheduler: timestep_type '{timestepType}' must be 'discrete' or 'continuous'.");
        // diffusers uses EDM's c_noise = ¼·ln σ as the timestep only for continuous v-prediction models.
        _continuousTimesteps = timestepType == "continuous" && PredictionType == "v_prediction";
    }

    public override string Name => "EulerDiscreteScheduler";
    public override IReadOnlyList<float>? Sigmas => _sigmas;
    public override float InitNoiseSigma => SigmaMath.InitNoiseSigma(_sigmas, _spacing);

    /// <summary>Stochastic churn (Karras et al. 2022, Algorithm 2): γ = min(S_churn/N, √2-1) for σ in
    /// [S_tmin, S_tmax], with fresh noise scaled by S_noise. diffusers' step() keywords; 0 = plain Euler.</summary>
    public float SChurn { get; set; }
    public float STmin { get; set; }
    public float STmax { get; set; } = float.PositiveInfinity;
    public float SNoise { get; set; } = 1f;

    protected override float[] ComputeTimesteps(int n)
    {
        (var timesteps, _sigmas) = SigmaMath.DiscreteSchedule(NoiseSchedule, _spacing, n, _stepsOffset,
            _sigmaSchedule, roundKarrasTimesteps: false, _sigmaMin, _sigmaMax);
        return _continuousTimesteps
            ? _sigmas[..^1].Select(s => 0.25f * MathF.Log(s)).ToArray()
            : timesteps;
    }

    public override Tensor ScaleModelInput(Tensor sample, float timestep) =>
        SigmaMath.ScaleInput(sample, _sigmas[CurrentStepIndex(timestep)]);

    public override Tensor Step(Tensor modelOutput, float timestep, Tensor sample, Generator? generator = null)
    {
        int i = CurrentStepIndex(timestep);
        float sigma = _sigmas[i];
        using var scope = NewDisposeScope();
        sample = sample.to(ScalarType.Float32); // diffusers upcasts for the update

        float gamma = STmin <= sigma && sigma <= STmax ? (float)Math.Min(SChurn / (double)(_sigmas.Length - 1), Math.Sqrt(2) - 1) : 0f;
        // diffusers draws this noise on every step, used or not; drawing it keeps a shared generator in step.
        var noise = generator is not null || gamma > 0 ? Noise.RandnLike(modelOutput, generator) : null;
        float sigmaHat = sigma * (gamma + 1f);
        if (gamma > 0)
            sample = sample + noise! * SNoise * MathF.Sqrt(sigmaHat * sigmaHat - sigma * sigma);

        var predOriginal = PredictionType == "epsilon"
            ? sample - sigmaHat * modelOutput
            : SigmaMath.PredictOriginal(PredictionType, modelOutput, sample, sigma);
        var derivative = (sample - predOriginal) / sigmaHat;   // dx/dσ
        float dt = _sigmas[i + 1] - sigmaHat;
        var prevSample = (sample + derivative * dt).to(modelOutput.dtype);
        StepIndex = i + 1;
        return prevSample.MoveToOuterDisposeScope();
    }

    /// <summary>x_0 + σ(t)·ε.</summary>
    public override Tensor AddNoise(Tensor original, Tensor noise, float timestep) =>
        SigmaMath.AddNoise(original, noise, _sigmas[IndexForTimestep(timestep)]);
}
