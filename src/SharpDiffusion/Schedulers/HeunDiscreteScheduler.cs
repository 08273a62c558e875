using static TorchSharp.torch;

namespace SharpDiffusion.Schedulers;

/// <summary>
/// Heun's method on the probability-flow ODE (Karras et al. 2022, Algorithm 1): an Euler predictor to
/// σ_{i+1}, then a corrector with the mean of the two slopes. Two model calls per step, so the schedule lists
/// every inner timestep twice (t_0, t_1, t_1, t_2, t_2, …); <see cref="Step"/> is called once per entry.
/// </summary>
public sealed class HeunDiscreteScheduler : SchedulerBase
{
    readonly string _spacing;
    readonly int _stepsOffset;
    readonly SigmaSchedule _sigmaSchedule;
    readonly bool _clipSample;
    readonly float _clipSampleRange;
    float[] _sigmas = [];         // σ_0, σ_1, σ_1, σ_2, σ_2, …, σ_{n-1}, σ_{n-1}, 0
    float[] _distinctSigmas = []; // σ_0 … σ_{n-1}, 0

    // Between the predictor and the corrector: the slope and step size at σ_i and the sample x_i.
    Tensor? _prevDerivative;
    float _dt;
    Tensor? _firstOrderSample;

    public HeunDiscreteScheduler(SchedulerConfig config) : base(config, NoiseSchedule.FromConfig(config, defaultBetaStart: 0.00085, defaultBetaEnd: 0.012))
    {
        _spacing = config.GetString("timestep_spacing", TimestepSpacing.Linspace);
        _stepsOffset = config.GetInt("steps_offset", 0);
        _sigmaSchedule = SigmaSchedule.FromConfig(config, Name);
        _clipSample = config.GetBool("clip_sample", false);
        _clipSampleRange = (float)config.GetDouble("clip_sample_range", 1.0);
    }

    public override string Name => "HeunDiscreteScheduler";
    public override int Order => 2;
    public override IReadOnlyList<float>? Sigmas => _sigmas;
    public override float InitNoiseSigma => SigmaMath.InitNoiseSigma(_sigmas, _spacing);
    public bool UseKarrasSigmas => _sigmaSchedule.Spacing == SigmaSpacing.Karras;

    bool InFirstOrder => _firstOrderSample is null;

    protected override float[] ComputeTimesteps(int n)
    {
        (var ts, _distinctSigmas) = SigmaMath.DiscreteSchedule(NoiseSchedule, _spacing, n, _stepsOffset,
            _sigmaSchedule, roundKarrasTimesteps: false);
        _sigmas = [_distinctSigmas[0], .. _distinctSigmas[1..^1].SelectMany(s => new[] { s, s }), 0f];
        return [ts[0], .. ts[1..].SelectMany(t => new[] { t, t })];
    }

    protected override void ResetState()
    {
        _prevDerivative?.Dispose();
        _prevDerivative = null;
        _firstOrderSample?.Dispose();
        _firstOrderSample = null;
    }

    public override Tensor ScaleModelInput(Tensor sample, float timestep) =>
        SigmaMath.ScaleInput(sample, _sigmas[CurrentStepIndex(timestep)]);

    public override Tensor Step(Tensor modelOutput, float timestep, Tensor sample, Generator? generator = null)
    {
        int i = CurrentStepIndex(timestep);
        bool first = InFirstOrder;
        // Predictor: from σ_i (index i) to σ_{i+1}; corrector: the same interval, evaluated at its end.
        float sigma = first ? _sigmas[i] : _sigmas[i - 1];
        float sigmaNext = first ? _sigmas[i + 1] : _sigmas[i];
        float sigmaInput = first ? sigma : sigmaNext;

        using var scope = NewDisposeScope();
        var predOriginal = SigmaMath.PredictOriginal(PredictionType, modelOutput, sample, sigmaInput);
        if (_clipSample)
            predOriginal = predOriginal.clamp(-_clipSampleRange, _clipSampleRange);

        Tensor prevSample;
        if (first)
        {
            var derivative = (sample - predOriginal) / sigma;
            _dt = sigmaNext - sigma;
            _prevDerivative = Keep(derivative.alias());
            _firstOrderSample = Keep(sample.clone());
            prevSample = sample + derivative * _dt;
        }
        else
        {
            var derivative = (_prevDerivative! + (sample - predOriginal) / sigmaNext) / 2;   // mean slope
            prevSample = _firstOrderSample! + derivative * _dt;
            ResetState();
        }
        StepIndex = i + 1;
        return prevSample.MoveToOuterDisposeScope();
    }

    /// <summary>x_0 + σ(t)·ε.</summary>
    public override Tensor AddNoise(Tensor original, Tensor noise, float timestep) =>
        SigmaMath.AddNoise(original, noise, _sigmas[IndexForTimestep(timestep)]);
}
