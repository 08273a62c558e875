using static TorchSharp.torch;

namespace SharpDiffusion.Schedulers;

/// <summary>
/// Linear multistep (k-diffusion's <c>sample_lms</c>): x_{i+1} = x_i + Σ_k c_k·d_{i-k}, where d = (x - x̂_0)/σ
/// and c_k = ∫_{σ_i}^{σ_{i+1}} ℓ_k(σ) dσ integrates the Lagrange basis polynomial through the last
/// <c>order</c> σ's. diffusers integrates numerically (scipy quad, rtol 1e-4); we integrate the polynomial exactly.
/// </summary>
public sealed class LMSDiscreteScheduler : SchedulerBase
{
    /// <summary>diffusers' <c>step(order=4)</c> default.</summary>
    public const int LmsOrder = 4;

    readonly string _spacing;
    readonly int _stepsOffset;
    readonly SigmaSchedule _sigmaSchedule;
    float[] _sigmas = [];
    readonly List<Tensor> _derivatives = []; // oldest first, at most LmsOrder

    public LMSDiscreteScheduler(SchedulerConfig config) : base(config, NoiseSchedule.FromConfig(config))
    {
        _spacing = config.GetString("timestep_spacing", TimestepSpacing.Linspace);
        _stepsOffset = config.GetInt("steps_offset", 0);
        _sigmaSchedule = SigmaSchedule.FromConfig(config, Name);
    }

    public override string Name => "LMSDiscreteScheduler";
    public bool UseKarrasSigmas => _sigmaSchedule.Spacing == SigmaSpacing.Karras;
    public override IReadOnlyList<float>? Sigmas => _sigmas;
    public override float InitNoiseSigma => SigmaMath.InitNoiseSigma(_sigmas, _spacing);

    protected override float[] ComputeTimesteps(int n)
    {
        (var timesteps, _sigmas) = SigmaMath.DiscreteSchedule(NoiseSchedule, _spacing, n, _stepsOffset,
            _sigmaSchedule, roundKarrasTimesteps: false);
        return timesteps;
    }

    protected override void ResetState()
    {
        foreach (var d in _derivatives)
            d.Dispose();
        _derivatives.Clear();
    }

    public override Tensor ScaleModelInput(Tensor sample, float timestep) =>
        SigmaMath.ScaleInput(sample, _sigmas[CurrentStepIndex(timestep)]);

    public override Tensor Step(Tensor modelOutput, float timestep, Tensor sample, Generator? generator = null)
    {
        int i = CurrentStepIndex(timestep);
        float sigma = _sigmas[i];
        using var scope = NewDisposeScope();

        var predOriginal = SigmaMath.PredictOriginal(PredictionType, modelOutput, sample, sigma);
        var derivative = (sample - predOriginal) / sigma;                  // d = (x - x̂_0)/σ
        _derivatives.Add(Keep(derivative));
        if (_derivatives.Count > LmsOrder)
        {
            _derivatives[0].Dispose();
            _derivatives.RemoveAt(0);
        }

        int order = Math.Min(i + 1, LmsOrder);
        // Newest derivative first: c_0·d_i + c_1·d_{i-1} + ... When sampling starts mid-schedule (img2img) the
        // history is shorter than the order: diffusers still builds the order-i+1 basis over the earlier σ's but
        // zips it with the derivatives it has, so only the leading coefficients are used. We do the same.
        Tensor? update = null;
        for (int k = 0; k < Math.Min(order, _derivatives.Count); k++)
        {
            double coeff = LmsCoefficient(order, i, k);
            var term = _derivatives[^(k + 1)] * coeff;
            update = update is null ? term : update + term;
        }
        var prevSample = sample + update!;
        StepIndex = i + 1;
        return prevSample.MoveToOuterDisposeScope();
    }

    /// <summary>∫_{σ_i}^{σ_{i+1}} ℓ_k(τ) dτ with ℓ_k(τ) = Π_{m≠k} (τ - σ_{i-m})/(σ_{i-k} - σ_{i-m}), m &lt; order.</summary>
    public double LmsCoefficient(int order, int i, int k)
    {
        // Expand ℓ_k in powers of u = τ - σ_i, so the integral over u ∈ [0, h] is Σ a_p h^{p+1}/(p+1).
        double from = _sigmas[i], h = (double)_sigmas[i + 1] - from;
        var poly = new double[order]; // a_p, p = 0..order-1
        poly[0] = 1;
        int degree = 0;
        for (int m = 0; m < order; m++)
        {
            if (m == k)
                continue;
            double node = _sigmas[i - m], denom = (double)_sigmas[i - k] - node;
            double shift = from - node; // τ - node = u + shift
            for (int p = degree + 1; p >= 0; p--)
                poly[p] = ((p > 0 ? poly[p - 1] : 0) + (p <= degree ? poly[p] * shift : 0)) / denom;
            degree++;
        }
        double integral = 0, hPow = h;
        for (int p = 0; p <= degree; p++, hPow *= h)
            integral += poly[p] * hPow / (p + 1);
        return integral;
    }

    /// <summary>x_0 + σ(t)·ε.</summary>
    public override Tensor AddNoise(Tensor original, Tensor noise, float timestep) =>
        SigmaMath.AddNoise(original, noise, _sigmas[IndexForTimestep(timestep)]);
}
