using static TorchSharp.torch;

namespace SharpDiffusion.Schedulers;

/// <summary>
/// k-diffusion's DPM-2 (<c>sample_dpm_2</c>, after Karras et al. 2022): a midpoint method in ln σ. An Euler
/// step to the geometric midpoint σ_mid = √(σ_i·σ_{i+1}), a model call there, then the full step with that
/// slope. Two calls per step: the schedule interleaves the midpoint timesteps (t_0, t_mid1, t_1, t_mid2, t_2, …).
/// </summary>
public sealed class KDPM2DiscreteScheduler : SchedulerBase
{
    readonly string _spacing;
    readonly int _stepsOffset;
    readonly SigmaSchedule _sigmaSchedule;
    float[] _sigmas = [];         // σ_0, σ_1, σ_1, …, σ_{n-1}, σ_{n-1}, 0, 0
    float[] _sigmasInterpol = []; // the midpoints, laid out the same way
    Tensor? _firstOrderSample;    // x_i while the midpoint evaluation is pending

    public KDPM2DiscreteScheduler(SchedulerConfig config) : base(config, NoiseSchedule.FromConfig(config, defaultBetaStart: 0.00085, defaultBetaEnd: 0.012))
    {
        _spacing = config.GetString("timestep_spacing", TimestepSpacing.Linspace);
        _stepsOffset = config.GetInt("steps_offset", 0);
        _sigmaSchedule = SigmaSchedule.FromConfig(config, Name);
        RequireEpsilonOrVPrediction();
    }

    public override string Name => "KDPM2DiscreteScheduler";
    public override int Order => 2;
    public override IReadOnlyList<float>? Sigmas => _sigmas;
    public override float InitNoiseSigma => SigmaMath.InitNoiseSigma(_sigmas, _spacing);
    public bool UseKarrasSigmas => _sigmaSchedule.Spacing == SigmaSpacing.Karras;

    bool InFirstOrder => _firstOrderSample is null;

    protected override float[] ComputeTimesteps(int n)
    {
        var (ts, distinct) = SigmaMath.DiscreteSchedule(NoiseSchedule, _spacing, n, _stepsOffset,
            _sigmaSchedule, roundKarrasTimesteps: true);                        // n, n+1
        float[] interpol = GeometricMidpoints(distinct);                           // n+1, [0] unused
        _sigmas = Interleave(distinct);
        _sigmasInterpol = Interleave(interpol);
        return WithMidpointTimesteps(ts, interpol[1..], NoiseSchedule);
    }

    /// <summary>[t_0, t(σ_mid,1), t_1, t(σ_mid,2), t_2, …, t_{n-1}]: the timesteps with the float32 timestep of each
    /// midpoint σ before the step it ends (<paramref name="midpoints"/>[k-1] lies between σ_{k-1} and σ_k).</summary>
    internal static float[] WithMidpointTimesteps(float[] ts, float[] midpoints, NoiseSchedule schedule)
    {
        var result = new List<float> { ts[0] };
        for (int k = 1; k < ts.Length; k++)
        {
            result.Add(SigmaMath.SigmaToTFloat32(midpoints[k - 1], schedule));
            result.Add(ts[k]);
        }
        return [.. result];
    }

    /// <summary>σ_mid,k = exp(lerp(ln σ_k, ln σ_{k-1}, ½)), with the float32 libtorch kernels diffusers uses.</summary>
    static float[] GeometricMidpoints(float[] sigmas)
    {
        using var scope = NewDisposeScope();
        var s = tensor(sigmas);
        return s.log().lerp(s.roll(1).log(), 0.5).exp().data<float>().ToArray();
    }

    /// <summary>[a_0, a_1, a_1, …, a_n, a_n, a_n]: diffusers' cat(a[:1], a[1:].repeat_interleave(2), a[-1:]).</summary>
    internal static float[] Interleave(float[] a) => [a[0], .. a[1..].SelectMany(x => new[] { x, x }), a[^1]];

    protected override void ResetState()
    {
        _firstOrderSample?.Dispose();
        _firstOrderSample = null;
    }

    public override Tensor ScaleModelInput(Tensor sample, float timestep)
    {
        int i = CurrentStepIndex(timestep);
        return SigmaMath.ScaleInput(sample, InFirstOrder ? _sigmas[i] : _sigmasInterpol[i]);
    }

    public override Tensor Step(Tensor modelOutput, float timestep, Tensor sample, Generator? generator = null)
    {
        int i = CurrentStepIndex(timestep);
        bool first = InFirstOrder;
        float sigma = first ? _sigmas[i] : _sigmas[i - 1];
        float sigmaInterpol = first ? _sigmasInterpol[i + 1] : _sigmasInterpol[i];
        float sigmaNext = first ? _sigmas[i + 1] : _sigmas[i];
        float sigmaInput = first ? sigma : sigmaInterpol;

        using var scope = NewDisposeScope();
        var predOriginal = SigmaMath.PredictOriginal(PredictionType, modelOutput, sample, sigmaInput);
        Tensor prevSample;
        if (first)
        {
            // Euler to the midpoint.
            var derivative = (sample - predOriginal) / sigma;
            _firstOrderSample = Keep(sample.clone());
            prevSample = sample + derivative * (sigmaInterpol - sigma);
        }
        else
        {
            // The full step from x_i with the slope at the midpoint.
            var derivative = (sample - predOriginal) / sigmaInterpol;
            prevSample = _firstOrderSample! + derivative * (sigmaNext - sigma);
            ResetState();
        }
        StepIndex = i + 1;
        return prevSample.MoveToOuterDisposeScope();
    }

    /// <summary>x_0 + σ(t)·ε.</summary>
    public override Tensor AddNoise(Tensor original, Tensor noise, float timestep) =>
        SigmaMath.AddNoise(original, noise, _sigmas[IndexForTimestep(timestep)]);
}
