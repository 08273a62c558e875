using static TorchSharp.torch;

namespace SharpDiffusion.Schedulers;

/// <summary>
/// UniPC (arXiv 2302.04867): a multistep predictor (UniP) followed, at the next call, by a corrector (UniC) that
/// reuses the new model output, both in half log-SNR λ with the B(h) variants bh1 (B = h) and bh2 (B = e^h - 1).
/// Data prediction (<c>predict_x0</c>) by default, like DPM-Solver++.
/// </summary>
public sealed class UniPCMultistepScheduler : SchedulerBase
{
    readonly string _spacing;
    readonly int _stepsOffset;
    readonly int _solverOrder;
    readonly bool _predictX0;
    readonly string _solverType;
    readonly bool _lowerOrderFinal;
    readonly int[] _disableCorrector;
    readonly bool _useKarrasSigmas;
    readonly bool _thresholding;
    readonly double _dynamicThresholdingRatio, _sampleMaxValue;

    float[] _sigmas = [];
    Tensor?[] _modelOutputs = [];   // converted outputs, oldest first
    Tensor? _lastSample;            // x_i before the predictor, for the corrector of the next call
    int _lowerOrderNums;
    int _thisOrder;

    public UniPCMultistepScheduler(SchedulerConfig config) : base(config, NoiseSchedule.FromConfig(config))
    {
        _spacing = config.GetString("timestep_spacing", TimestepSpacing.Linspace);
        _stepsOffset = config.GetInt("steps_offset", 0);
        _solverOrder = config.GetInt("solver_order", 2);
        _predictX0 = config.GetBool("predict_x0", true);
        _solverType = config.GetString("solver_type", "bh2");
        if (_solverType is "midpoint" or "heun" or "logrho")
            _solverType = "bh2"; // diffusers' mapping of DPM-Solver names
        if (_solverType is not ("bh1" or "bh2"))
            throw new NotSupportedException($"UniPCMultistepScheduler: solver_type '{_solverType}' is not supported (bh1, bh2).");
        if (_solverOrder < 1)
            throw new NotSupportedException($"UniPCMultistepScheduler: solver_order must be at least 1, got {_solverOrder}.");
        _lowerOrderFinal = config.GetBool("lower_order_final", true);
        _disableCorrector = config.GetIntArray("disable_corrector", []);
        _useKarrasSigmas = config.GetBool("use_karras_sigmas", false);
        _thresholding = config.GetBool("thresholding", false);
        _dynamicThresholdingRatio = config.GetDouble("dynamic_thresholding_ratio", 0.995);
        _sampleMaxValue = config.GetDouble("sample_max_value", 1.0);
    }

    public override string Name => "UniPCMultistepScheduler";
    public override IReadOnlyList<float>? Sigmas => _sigmas;
    public override float InitNoiseSigma => 1f;
    public bool UseKarrasSigmas => _useKarrasSigmas;

    protected override bool NeedsDistinctTimesteps => true;

    protected override float[] ComputeTimesteps(int n)
    {
        var spaced = TimestepSpacing.MultistepDescending(_spacing, NumTrainTimesteps, n, _stepsOffset, NumTrainTimesteps);
        (var timesteps, _sigmas) = SigmaMath.MultistepSchedule(NoiseSchedule, spaced, n, _useKarrasSigmas);
        return timesteps;
    }

    protected override void ResetState()
    {
        foreach (var m in _modelOutputs)
            m?.Dispose();
        _modelOutputs = new Tensor?[_solverOrder];
        _lastSample?.Dispose();
        _lastSample = null;
        _lowerOrderNums = 0;
        _thisOrder = 0;
    }

    public override Tensor ScaleModelInput(Tensor sample, float timestep) => sample.alias();

    public override Tensor Step(Tensor modelOutput, float timestep, Tensor sample, Generator? generator = null)
    {
        int i = CurrentStepIndex(timestep);
        using var scope = NewDisposeScope();
        bool useCorrector = i > 0 && !_disableCorrector.Contains(i - 1) && _lastSample is not null;
        var converted = ConvertModelOutput(modelOutput, sample, _sigmas[i]);
        if (useCorrector)
            sample = CorrectorUpdate(converted, _lastSample!, _thisOrder, i);

        _modelOutputs[0]?.Dispose();
        for (int k = 0; k < _solverOrder - 1; k++)
            _modelOutputs[k] = _modelOutputs[k + 1];
        _modelOutputs[^1] = Keep(converted.alias());

        int order = _lowerOrderFinal ? Math.Min(_solverOrder, Timesteps.Count - i) : _solverOrder;
        _thisOrder = Math.Min(order, _lowerOrderNums + 1); // warm-up: the history is not full yet

        _lastSample?.Dispose();
        _lastSample = Keep(sample.alias());
        var prevSample = PredictorUpdate(sample, _thisOrder, i);

        if (_lowerOrderNums < _solverOrder)
            _lowerOrderNums++;
        StepIndex = i + 1;
        return prevSample.MoveToOuterDisposeScope();
    }

    Tensor ConvertModelOutput(Tensor modelOutput, Tensor sample, float sigma)
    {
        var (alphaT, sigmaT) = SigmaMath.AlphaSigma(sigma);
        if (_predictX0)
        {
            var x0 = SigmaMath.PredictDataVp(Name, PredictionType, modelOutput, sample, alphaT, sigmaT);
            return _thresholding ? AlphaMath.Threshold(x0, _dynamicThresholdingRatio, _sampleMaxValue) : x0;
        }
        return SigmaMath.PredictNoiseVp(Name, PredictionType, modelOutput, sample, alphaT, sigmaT);
    }

    /// <summary>The B(h)-dependent linear system of UniPC: R_{pk} = r_k^{p-1} (r = λ-ratios of the history,
    /// then 1), b_p = h·φ_{p+1}(h)·p!/B(h) with φ from the recursion φ_{k+1} = (φ_k - 1/k!)/h.</summary>
    (float[] Rks, float[] B, float HPhi1, float Bh) Coefficients(float h, float[] historyRks, int order)
    {
        float hh = _predictX0 ? -h : h;
        float hPhi1 = SigmaMath.Expm1(hh);           // h·φ_1(h) = e^h - 1
        float hPhiK = hPhi1 / hh - 1f;
        float bh = _solverType == "bh1" ? hh : SigmaMath.Expm1(hh);
        var b = new float[order];
        long factorial = 1;
        for (int p = 1; p <= order; p++)
        {
            b[p - 1] = hPhiK * factorial / bh;
            factorial *= p + 1;
            hPhiK = hPhiK / hh - (float)(1.0 / factorial);
        }
        return ([.. historyRks, 1f], b, hPhi1, bh);
    }

    /// <summary>Solves R·ρ = b for the leading <paramref name="size"/>×<paramref name="size"/> block with
    /// libtorch's float32 LU, as diffusers does.</summary>
    static float[] Solve(float[] rks, float[] b, int size)
    {
        using var scope = NewDisposeScope();
        var r = new float[size * size];
        for (int p = 0; p < size; p++)
            for (int k = 0; k < size; k++)
                r[p * size + k] = p == 0 ? 1f : MathF.Pow(rks[k], p);
        var rho = linalg.solve(tensor(r).reshape(size, size), tensor(b[..size]));
        return rho.data<float>().ToArray();
    }

    /// <summary>What UniP and UniC share for the step from σ[s] to σ[s+1], with m_0 the newest stored output: α, σ at
    /// both ends, h = λ_{s+1} - λ_s, and for the order-1 older outputs m_k the λ-ratios r_k = (λ(σ[s-k]) - λ_s)/h and
    /// divided differences D_k = (m_k - m_0)/r_k.</summary>
    (float AlphaT, float SigmaT, float AlphaS0, float SigmaS0, float H, float[] Rks, Tensor[] D1s) StepTerms(int s, int order)
    {
        var (alphaT, sigmaT) = SigmaMath.AlphaSigma(_sigmas[s + 1]);
        var (alphaS0, sigmaS0) = SigmaMath.AlphaSigma(_sigmas[s]);
        float lambdaS0 = SigmaMath.Lambda(alphaS0, sigmaS0);
        float h = SigmaMath.Lambda(alphaT, sigmaT) - lambdaS0;
        Tensor m0 = _modelOutputs[^1]!;

        var rks = new float[order - 1];
        var d1s = new Tensor[order - 1];
        for (int k = 1; k < order; k++)
        {
            var (alphaSk, sigmaSk) = SigmaMath.AlphaSigma(_sigmas[s - k]);
            rks[k - 1] = (SigmaMath.Lambda(alphaSk, sigmaSk) - lambdaS0) / h;
            d1s[k - 1] = (_modelOutputs[^(k + 1)]! - m0) / rks[k - 1];
        }
        return (alphaT, sigmaT, alphaS0, sigmaS0, h, rks, d1s);
    }

    /// <summary>The first-order (DDIM-like) part of both updates: (σ_t/σ_s)·x - α_t·hφ_1·m_0 with data prediction,
    /// (α_t/α_s)·x - σ_t·hφ_1·m_0 with noise prediction.</summary>
    Tensor FirstOrderTerm(Tensor x, float alphaT, float sigmaT, float alphaS0, float sigmaS0, float hPhi1, Tensor m0) =>
        _predictX0
            ? sigmaT / sigmaS0 * x - alphaT * hPhi1 * m0
            : alphaT / alphaS0 * x - sigmaT * hPhi1 * m0;

    /// <summary>UniP: x_{i+1} = (σ_{i+1}/σ_i)·x_i - α_{i+1}·hφ_1·m_0 - α_{i+1}·B(h)·Σ_k ρ_k·D_k (data prediction).</summary>
    Tensor PredictorUpdate(Tensor x, int order, int i)
    {
        var (alphaT, sigmaT, alphaS0, sigmaS0, h, rks, d1s) = StepTerms(i, order);
        Tensor m0 = _modelOutputs[^1]!;
        var (allRks, b, hPhi1, bh) = Coefficients(h, rks, order);
        float[] rhos = d1s.Length == 0 ? [] : order == 2 ? [0.5f] : Solve(allRks, b, order - 1);

        var xt = FirstOrderTerm(x, alphaT, sigmaT, alphaS0, sigmaS0, hPhi1, m0);
        if (d1s.Length == 0)
            return xt;
        var predRes = WeightedSum(rhos, d1s);
        return xt - (_predictX0 ? alphaT : sigmaT) * bh * predRes;
    }

    /// <summary>UniC: redo the last step from x_{i-1} with the model output at x_i included (ρ from the full system).</summary>
    Tensor CorrectorUpdate(Tensor modelT, Tensor lastSample, int order, int i)
    {
        var (alphaT, sigmaT, alphaS0, sigmaS0, h, rks, d1s) = StepTerms(i - 1, order);
        Tensor m0 = _modelOutputs[^1]!;
        var (allRks, b, hPhi1, bh) = Coefficients(h, rks, order);
        float[] rhos = order == 1 ? [0.5f] : Solve(allRks, b, order);

        var xt = FirstOrderTerm(lastSample, alphaT, sigmaT, alphaS0, sigmaS0, hPhi1, m0);
        var d1t = modelT - m0;
        var correction = rhos[^1] * d1t;
        if (d1s.Length > 0)
            correction = WeightedSum(rhos[..^1], d1s) + correction;
        return xt - (_predictX0 ? alphaT : sigmaT) * bh * correction;
    }

    /// <summary>Σ_k ρ_k·D_k (diffusers' einsum "k,bkc...->bc...").</summary>
    static Tensor WeightedSum(float[] rhos, Tensor[] ds)
    {
        var sum = rhos[0] * ds[0];
        for (int k = 1; k < ds.Length; k++)
            sum = sum + rhos[k] * ds[k];
        return sum;
    }

    /// <summary>α_t·x_0 + σ_t·ε with α_t, σ_t from the step's σ.</summary>
    public override Tensor AddNoise(Tensor original, Tensor noise, float timestep) =>
        SigmaMath.AddNoiseVp(original, noise, _sigmas[IndexForTimestep(timestep)]);
}
