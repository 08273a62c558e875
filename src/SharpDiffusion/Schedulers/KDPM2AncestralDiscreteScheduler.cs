using static TorchSharp.torch;

namespace SharpDiffusion.Schedulers;

/// <summary>
/// k-diffusion's ancestral DPM-2 (<c>sample_dpm_2_ancestral</c>): the DPM-2 midpoint step aimed at σ_down
/// instead of σ_{i+1}, then fresh noise of size σ_up (σ_up, σ_down as in Euler ancestral). Two model calls per
/// step; noise is drawn on every call (used on the second), as diffusers does.
/// </summary>
public sealed class KDPM2AncestralDiscreteScheduler : SchedulerBase
{
    readonly string _spacing;
    readonly int _stepsOffset;
    readonly SigmaSchedule _sigmaSchedule;
    // All laid out as [a_0, a_1, a_1, …, a_n, a_n, a_n] over the n+1 distinct values.
    float[] _sigmas = [], _sigmasInterpol = [], _sigmasUp = [], _sigmasDown = [];
    Tensor? _firstOrderSample;

    public KDPM2AncestralDiscreteScheduler(SchedulerConfig config) : base(config, NoiseSchedule.FromConfig(config, defaultBetaStart: 0.00085, defaultBetaEnd: 0.012))
    {
        _spacing = config.GetString("timestep_spacing", TimestepSpacing.Linspace);
        _stepsOffset = config.GetInt("steps_offset", 0);
        _sigmaSchedule = SigmaSchedule.FromConfig(config, Name);
        RequireEpsilonOrVPrediction();
    }

    public override string Name => "KDPM2AncestralDiscreteScheduler";
    public override int Order => 2;
    public override IReadOnlyList<float>? Sigmas => _sigmas;
    public override float InitNoiseSigma => SigmaMath.InitNoiseSigma(_sigmas, _spacing);
    public bool UseKarrasSigmas => _sigmaSchedule.Spacing == SigmaSpacing.Karras;

    bool InFirstOrder => _firstOrderSample is null;

    protected override float[] ComputeTimesteps(int n)
    {
        var (ts, distinct) = SigmaMath.DiscreteSchedule(NoiseSchedule, _spacing, n, _stepsOffset,
            _sigmaSchedule, roundKarrasTimesteps: true);
        var (up, down, interpol) = AncestralSigmas(distinct);
        _sigmas = KDPM2DiscreteScheduler.Interleave(distinct);
        _sigmasUp = KDPM2DiscreteScheduler.Interleave(up);
        _sigmasDown = KDPM2DiscreteScheduler.Interleave(down);
        _sigmasInterpol = KDPM2DiscreteScheduler.Interleave(interpol);
        return KDPM2DiscreteScheduler.WithMidpointTimesteps(ts, interpol, NoiseSchedule);
    }

    /// <summary>σ_up = √(σ_{k+1}²(σ_k² - σ_{k+1}²)/σ_k²), σ_down = √(σ_{k+1}² - σ_up²) and the geometric midpoint of
    /// σ_k and σ_down, with the float32 libtorch kernels diffusers uses (the last two midpoints are 0).</summary>
    static (float[] Up, float[] Down, float[] Interpol) AncestralSigmas(float[] distinct)
    {
        using var scope = NewDisposeScope();
        var sigmas = tensor(distinct);
        var next = sigmas.roll(-1);
        next[-1] = tensor(0f);
        var up = (next.pow(2) * (sigmas.pow(2) - next.pow(2)) / sigmas.pow(2)).pow(0.5);
        var down = (next.pow(2) - up.pow(2)).pow(0.5);
        down[-1] = tensor(0f);
        var interpol = sigmas.log().lerp(down.log(), 0.5).exp();
        interpol[^2..] = tensor(0f);
        return (up.data<float>().ToArray(), down.data<float>().ToArray(), interpol.data<float>().ToArray());
    }

    protected override void ResetState()
    {
        _firstOrderSample?.Dispose();
        _firstOrderSample = null;
    }

    public override Tensor ScaleModelInput(Tensor sample, float timestep)
    {
        int i = CurrentStepIndex(timestep);
        return SigmaMath.ScaleInput(sample, InFirstOrder ? _sigmas[i] : _sigmasInterpol[i - 1]);
    }

    public override Tensor Step(Tensor modelOutput, float timestep, Tensor sample, Generator? generator = null)
    {
        int i = CurrentStepIndex(timestep);
        bool first = InFirstOrder;
        int k = first ? i : i - 1;
        float sigma = _sigmas[k], sigmaInterpol = _sigmasInterpol[k], sigmaUp = _sigmasUp[k];
        float sigmaDown = _sigmasDown[i - 1 < 0 ? _sigmasDown.Length - 1 : i - 1];

        using var scope = NewDisposeScope();
        var noise = Noise.RandnLike(modelOutput, generator);
        var predOriginal = SigmaMath.PredictOriginal(PredictionType, modelOutput, sample, first ? sigma : sigmaInterpol);
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
            // From x_i to σ_down with the midpoint slope, then noise up to σ_{i+1}.
            var derivative = (sample - predOriginal) / sigmaInterpol;
            prevSample = _firstOrderSample! + derivative * (sigmaDown - sigma);
            prevSample = prevSample + noise * sigmaUp;
            ResetState();
        }
        StepIndex = i + 1;
        return prevSample.MoveToOuterDisposeScope();
    }

    /// <summary>x_0 + σ(t)·ε.</summary>
    public override Tensor AddNoise(Tensor original, Tensor noise, float timestep) =>
        SigmaMath.AddNoise(original, noise, _sigmas[IndexForTimestep(timestep)]);
}
