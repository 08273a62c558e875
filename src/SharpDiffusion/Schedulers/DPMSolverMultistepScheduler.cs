using static TorchSharp.torch;

namespace SharpDiffusion.Schedulers;

/// <summary>
/// DPM-Solver (arXiv 2206.00927) and DPM-Solver++ (arXiv 2211.01095) multistep, in half log-SNR
/// λ = ln(α_t/σ_t) with h = λ_{i+1} - λ_i. DPM-Solver++(2M): x_{i+1} = (σ_{i+1}/σ_i)·x_i - α_{i+1}(e^{-h}-1)·(D0 + ½D1),
/// D0 = x̂_0 now, D1 = (x̂_0 now - x̂_0 before)/r, r = h_prev/h. The "sde-" variants add noise from the generator.
/// </summary>
public sealed class DPMSolverMultistepScheduler : SchedulerBase
{
    readonly string _spacing;
    readonly int _stepsOffset;
    readonly int _solverOrder;
    readonly string _algorithm;    // dpmsolver++, dpmsolver, sde-dpmsolver++, sde-dpmsolver
    readonly string _solverType;   // midpoint, heun
    readonly bool _lowerOrderFinal, _eulerAtFinal;
    readonly SigmaSpacing _sigmaSpacing;  // Interpolated, Karras, Exponential or Beta
    readonly double _lambdaMinClipped;
    readonly string? _varianceType;
    readonly bool _thresholding;
    readonly double _dynamicThresholdingRatio, _sampleMaxValue;

    float[] _sigmas = [];
    Tensor?[] _modelOutputs = [];  // converted outputs of the last solver_order steps, oldest first
    int _lowerOrderNums;

    public DPMSolverMultistepScheduler(SchedulerConfig config) : base(config, NoiseSchedule.FromConfig(config))
    {
        _spacing = config.GetString("timestep_spacing", TimestepSpacing.Linspace);
        _stepsOffset = config.GetInt("steps_offset", 0);
        _solverOrder = config.GetInt("solver_order", 2);
        _algorithm = config.GetString("algorithm_type", "dpmsolver++");
        _solverType = config.GetString("solver_type", "midpoint");
        _lowerOrderFinal = config.GetBool("lower_order_final", true);
        _eulerAtFinal = config.GetBool("euler_at_final", false);
        _sigmaSpacing = MultistepSpacing(config);
        _lambdaMinClipped = config.GetDouble("lambda_min_clipped", double.NegativeInfinity);
        _varianceType = config.GetStringOrNull("variance_type");
        _thresholding = config.GetBool("thresholding", false);
        _dynamicThresholdingRatio = config.GetDouble("dynamic_thresholding_ratio", 0.995);
        _sampleMaxValue = config.GetDouble("sample_max_value", 1.0);

        // diffusers maps the names of related solvers onto these two.
        if (_algorithm == "deis")
            _algorithm = "dpmsolver++";
        if (_algorithm is not ("dpmsolver++" or "dpmsolver" or "sde-dpmsolver++" or "sde-dpmsolver"))
            throw new NotSupportedException($"DPMSolverMultistepScheduler: algorithm_type '{_algorithm}' is not supported.");
        if (_solverType is "logrho" or "bh1" or "bh2")
            _solverType = "midpoint";
        if (_solverType is not ("midpoint" or "heun"))
            throw new NotSupportedException($"DPMSolverMultistepScheduler: solver_type '{_solverType}' is not supported.");
        if (_solverOrder is < 1 or > 3 || (_solverOrder == 3 && _algorithm.StartsWith("sde-")))
            throw new NotSupportedException($"DPMSolverMultistepScheduler: solver_order {_solverOrder} with '{_algorithm}' is not supported (1-3, SDE variants 1-2).");
        if (config.GetBool("use_lu_lambdas", false))
            throw new NotSupportedException("DPMSolverMultistepScheduler: use_lu_lambdas is not supported.");
        // Exponential and beta σ's end at σ = 0 (diffusers' final_sigmas_type "zero", k-diffusion's last step), where
        // only the data-prediction (++) solvers are defined: DPM-Solver's ε form divides by σ_t.
        if (EndsAtZero && !_algorithm.EndsWith("++", StringComparison.Ordinal))
            throw new NotSupportedException($"DPMSolverMultistepScheduler: exponential and beta sigmas end at sigma 0, which algorithm_type '{_algorithm}' cannot step to; use dpmsolver++ or sde-dpmsolver++.");
    }

    /// <summary>use_karras_sigmas, use_exponential_sigmas or use_beta_sigmas (at most one), as diffusers ≥ 0.32 reads them
    /// (0.31 takes the keys but fails in set_timesteps).</summary>
    static SigmaSpacing MultistepSpacing(SchedulerConfig config)
    {
        var flags = new (string Key, SigmaSpacing Spacing)[]
        {
            ("use_karras_sigmas", SigmaSpacing.Karras), ("use_exponential_sigmas", SigmaSpacing.Exponential), ("use_beta_sigmas", SigmaSpacing.Beta),
        }.Where(f => config.GetBool(f.Key, false)).ToList();
        if (flags.Count > 1)
            throw new ArgumentException($"DPMSolverMultistepScheduler: only one of {string.Join(", ", flags.Select(f => f.Key))} can be true.");
        return flags.Count == 1 ? flags[0].Spacing : SigmaSpacing.Interpolated;
    }

    /// <summary>Whether the last σ is 0 (exponential and beta σ's) rather than σ_min (the interpolated and Karras ones).</summary>
    bool EndsAtZero => _sigmaSpacing is SigmaSpacing.Exponential or SigmaSpacing.Beta;

    public override string Name => "DPMSolverMultistepScheduler";
    public override IReadOnlyList<float>? Sigmas => _sigmas;
    public override float InitNoiseSigma => 1f;
    public int SolverOrder => _solverOrder;
    public string AlgorithmType => _algorithm;
    public bool UseKarrasSigmas => _sigmaSpacing == SigmaSpacing.Karras;
    /// <summary>The σ spacing the config chose (A1111's schedule type).</summary>
    public SigmaSpacing SigmaSpacing => _sigmaSpacing;

    // The log-SNR gaps come from the σ's, which exponential and beta spacing keep distinct even where their truncated
    // timesteps repeat (near t = 0 at many steps); the interpolated and Karras σ's follow the timesteps.
    protected override bool NeedsDistinctTimesteps => !EndsAtZero;

    protected override float[] ComputeTimesteps(int n)
    {
        // Skip the steps whose λ falls below lambda_min_clipped (for cosine schedules); none by default.
        int lastTimestep = NumTrainTimesteps - ClippedCount();
        var spaced = TimestepSpacing.MultistepDescending(_spacing, NumTrainTimesteps, n, _stepsOffset, lastTimestep);
        (var timesteps, _sigmas) = SigmaMath.MultistepSchedule(NoiseSchedule, spaced, n, _sigmaSpacing);
        return timesteps;
    }

    /// <summary>searchsorted(λ ascending, lambda_min_clipped): how many λ_t lie below the clip.</summary>
    int ClippedCount()
    {
        var acp = NoiseSchedule.AlphasCumprod;
        int count = 0;
        foreach (float a in acp)
            if (SigmaMath.Lambda(MathF.Sqrt(a), MathF.Sqrt(1f - a)) < _lambdaMinClipped)
                count++;
        return count;
    }

    protected override void ResetState()
    {
        foreach (var m in _modelOutputs)
            m?.Dispose();
        _modelOutputs = new Tensor?[Math.Max(_solverOrder, 1)];
        _lowerOrderNums = 0;
    }

    public override Tensor ScaleModelInput(Tensor sample, float timestep) => sample.alias();

    public override Tensor Step(Tensor modelOutput, float timestep, Tensor sample, Generator? generator = null)
    {
        int i = CurrentStepIndex(timestep);
        int count = Timesteps.Count;
        // A step to σ = 0 is first order whatever the count (h = ∞: the update is x̂_0 itself), as diffusers' final_sigmas_type "zero".
        bool lowerOrderFinal = i == count - 1 && (_eulerAtFinal || (_lowerOrderFinal && count < 15) || EndsAtZero);
        bool lowerOrderSecond = i == count - 2 && _lowerOrderFinal && count < 15;

        using var scope = NewDisposeScope();
        var converted = ConvertModelOutput(modelOutput, sample, _sigmas[i]);
        _modelOutputs[0]?.Dispose();
        for (int k = 0; k < _modelOutputs.Length - 1; k++)
            _modelOutputs[k] = _modelOutputs[k + 1];
        _modelOutputs[^1] = Keep(converted.alias());

        var noise = _algorithm.StartsWith("sde-") ? Noise.RandnLike(modelOutput, generator) : null;
        Tensor prevSample;
        if (_solverOrder == 1 || _lowerOrderNums < 1 || lowerOrderFinal)
            prevSample = FirstOrderUpdate(converted, sample, noise, i);
        else if (_solverOrder == 2 || _lowerOrderNums < 2 || lowerOrderSecond)
            prevSample = SecondOrderUpdate(sample, noise, i);
        else
            prevSample = ThirdOrderUpdate(sample, i);

        if (_lowerOrderNums < _solverOrder)
            _lowerOrderNums++;
        StepIndex = i + 1;
        return prevSample.MoveToOuterDisposeScope();
    }

    /// <summary>DPM-Solver++ works on x̂_0 predictions, DPM-Solver on ε predictions.</summary>
    Tensor ConvertModelOutput(Tensor modelOutput, Tensor sample, float sigma)
    {
        var (alphaT, sigmaT) = SigmaMath.AlphaSigma(sigma);
        if (_varianceType is "learned" or "learned_range")
            modelOutput = modelOutput.narrow(1, 0, 3); // the model also predicts a variance; keep the mean
        bool dataPrediction = _algorithm is "dpmsolver++" or "sde-dpmsolver++";
        if (dataPrediction)
        {
            var x0 = SigmaMath.PredictDataVp(Name, PredictionType, modelOutput, sample, alphaT, sigmaT);
            return _thresholding ? AlphaMath.Threshold(x0, _dynamicThresholdingRatio, _sampleMaxValue) : x0;
        }
        var epsilon = SigmaMath.PredictNoiseVp(Name, PredictionType, modelOutput, sample, alphaT, sigmaT);
        if (!_thresholding)
            return epsilon;
        var thresholded = AlphaMath.Threshold((sample - sigmaT * epsilon) / alphaT, _dynamicThresholdingRatio, _sampleMaxValue);
        return (sample - alphaT * thresholded) / sigmaT;
    }

    /// <summary>One step of DPM-Solver-1 (= DDIM for ++): from σ_i to σ_{i+1}.</summary>
    Tensor FirstOrderUpdate(Tensor m0, Tensor sample, Tensor? noise, int i)
    {
        var (alphaT, sigmaT) = SigmaMath.AlphaSigma(_sigmas[i + 1]);
        var (alphaS, sigmaS) = SigmaMath.AlphaSigma(_sigmas[i]);
        float h = SigmaMath.Lambda(alphaT, sigmaT) - SigmaMath.Lambda(alphaS, sigmaS);
        return _algorithm switch
        {
            "dpmsolver++" => sigmaT / sigmaS * sample - alphaT * (MathF.Exp(-h) - 1f) * m0,
            "dpmsolver" => alphaT / alphaS * sample - sigmaT * (MathF.Exp(h) - 1f) * m0,
            "sde-dpmsolver++" => sigmaT / sigmaS * MathF.Exp(-h) * sample + alphaT * (1f - MathF.Exp(-2f * h)) * m0
                                 + sigmaT * MathF.Sqrt(1f - MathF.Exp(-2f * h)) * noise!,
            _ => alphaT / alphaS * sample - 2f * (sigmaT * (MathF.Exp(h) - 1f)) * m0
                 + sigmaT * MathF.Sqrt(MathF.Exp(2f * h) - 1f) * noise!,
        };
    }

    /// <summary>Multistep second order: D1 = (m0 - m1)/r0 estimates the derivative of the prediction in λ.</summary>
    Tensor SecondOrderUpdate(Tensor sample, Tensor? noise, int i)
    {
        var (alphaT, sigmaT) = SigmaMath.AlphaSigma(_sigmas[i + 1]);
        var (alphaS0, sigmaS0) = SigmaMath.AlphaSigma(_sigmas[i]);
        var (alphaS1, sigmaS1) = SigmaMath.AlphaSigma(_sigmas[i - 1]);
        float lambdaT = SigmaMath.Lambda(alphaT, sigmaT), lambdaS0 = SigmaMath.Lambda(alphaS0, sigmaS0), lambdaS1 = SigmaMath.Lambda(alphaS1, sigmaS1);
        Tensor m0 = _modelOutputs[^1]!, m1 = _modelOutputs[^2]!;
        float h = lambdaT - lambdaS0, h0 = lambdaS0 - lambdaS1;
        float r0 = h0 / h;
        var d0 = m0;
        var d1 = 1f / r0 * (m0 - m1);
        bool midpoint = _solverType == "midpoint";
        switch (_algorithm)
        {
            case "dpmsolver++":
            {
                float c = alphaT * (MathF.Exp(-h) - 1f);
                var x = sigmaT / sigmaS0 * sample - c * d0;
                return midpoint ? x - 0.5f * c * d1 : x + alphaT * ((MathF.Exp(-h) - 1f) / h + 1f) * d1;
            }
            case "dpmsolver":
            {
                float c = sigmaT * (MathF.Exp(h) - 1f);
                var x = alphaT / alphaS0 * sample - c * d0;
                return midpoint ? x - 0.5f * c * d1 : x - sigmaT * ((MathF.Exp(h) - 1f) / h - 1f) * d1;
            }
            case "sde-dpmsolver++":
            {
                float c = alphaT * (1f - MathF.Exp(-2f * h));
                var x = sigmaT / sigmaS0 * MathF.Exp(-h) * sample + c * d0;
                x = midpoint ? x + 0.5f * c * d1 : x + alphaT * ((1f - MathF.Exp(-2f * h)) / (-2f * h) + 1f) * d1;
                return x + sigmaT * MathF.Sqrt(1f - MathF.Exp(-2f * h)) * noise!;
            }
            default: // sde-dpmsolver
            {
                float c = sigmaT * (MathF.Exp(h) - 1f);
                var x = alphaT / alphaS0 * sample - 2f * c * d0;
                x = midpoint ? x - c * d1 : x - 2f * (sigmaT * ((MathF.Exp(h) - 1f) / h - 1f)) * d1;
                return x + sigmaT * MathF.Sqrt(MathF.Exp(2f * h) - 1f) * noise!;
            }
        }
    }

    /// <summary>Multistep third order (ODE variants only).</summary>
    Tensor ThirdOrderUpdate(Tensor sample, int i)
    {
        var (alphaT, sigmaT) = SigmaMath.AlphaSigma(_sigmas[i + 1]);
        var (alphaS0, sigmaS0) = SigmaMath.AlphaSigma(_sigmas[i]);
        var (alphaS1, sigmaS1) = SigmaMath.AlphaSigma(_sigmas[i - 1]);
        var (alphaS2, sigmaS2) = SigmaMath.AlphaSigma(_sigmas[i - 2]);
        float lambdaT = SigmaMath.Lambda(alphaT, sigmaT), lambdaS0 = SigmaMath.Lambda(alphaS0, sigmaS0);
        float lambdaS1 = SigmaMath.Lambda(alphaS1, sigmaS1), lambdaS2 = SigmaMath.Lambda(alphaS2, sigmaS2);
        Tensor m0 = _modelOutputs[^1]!, m1 = _modelOutputs[^2]!, m2 = _modelOutputs[^3]!;
        float h = lambdaT - lambdaS0, h0 = lambdaS0 - lambdaS1, h1 = lambdaS1 - lambdaS2;
        float r0 = h0 / h, r1 = h1 / h;
        var d10 = 1f / r0 * (m0 - m1);
        var d11 = 1f / r1 * (m1 - m2);
        var d1 = d10 + r0 / (r0 + r1) * (d10 - d11);
        var d2 = 1f / (r0 + r1) * (d10 - d11);
        if (_algorithm == "dpmsolver++")
            return sigmaT / sigmaS0 * sample - alphaT * (MathF.Exp(-h) - 1f) * m0
                   + alphaT * ((MathF.Exp(-h) - 1f) / h + 1f) * d1
                   - alphaT * ((MathF.Exp(-h) - 1f + h) / (h * h) - 0.5f) * d2;
        return alphaT / alphaS0 * sample - sigmaT * (MathF.Exp(h) - 1f) * m0
               - sigmaT * ((MathF.Exp(h) - 1f) / h - 1f) * d1
               - sigmaT * ((MathF.Exp(h) - 1f - h) / (h * h) - 0.5f) * d2;
    }

    /// <summary>α_t·x_0 + σ_t·ε with α_t, σ_t from the step's σ.</summary>
    public override Tensor AddNoise(Tensor original, Tensor noise, float timestep) =>
        SigmaMath.AddNoiseVp(original, noise, _sigmas[IndexForTimestep(timestep)]);
}
