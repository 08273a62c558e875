using static TorchSharp.torch;

namespace SharpDiffusion.Schedulers;

/// <summary>
/// Pseudo numerical methods for diffusion models (PNDM, arXiv 2202.09778): a few Runge–Kutta steps (PRK) to
/// warm up, then linear multistep (PLMS) on the ε history. With <c>skip_prk_steps</c> (Stable Diffusion's
/// config) the warm-up is crowsonkb's PLMS start instead: one step, then a second evaluation at the same
/// timestep, so the schedule repeats its second timestep (951, 901, 901, 851, …).
/// </summary>
public sealed class PNDMScheduler : SchedulerBase
{
    const int PndmOrder = 4;

    readonly string _spacing;
    readonly int _stepsOffset;
    readonly bool _skipPrkSteps;
    readonly float _finalAlphaCumprod;

    int[] _prkTimesteps = [];
    int _counter;
    readonly List<Tensor> _ets = [];   // ε history, oldest first
    Tensor? _curModelOutput;          // PRK: running Σ w_k ε_k of the current Runge–Kutta step
    Tensor? _curSample;

    public PNDMScheduler(SchedulerConfig config) : base(config, NoiseSchedule.FromConfig(config))
    {
        _spacing = config.GetString("timestep_spacing", TimestepSpacing.Leading);
        _stepsOffset = config.GetInt("steps_offset", 0);
        _skipPrkSteps = config.GetBool("skip_prk_steps", false);
        _finalAlphaCumprod = config.GetBool("set_alpha_to_one", false) ? 1f : NoiseSchedule.AlphasCumprod[0];
        if (PredictionType is not ("epsilon" or "v_prediction"))
            throw new ArgumentException($"PNDMScheduler: prediction_type '{PredictionType}' must be 'epsilon' or 'v_prediction'");
    }

    public override string Name => "PNDMScheduler";
    public bool SkipPrkSteps => _skipPrkSteps;
    public override float InitNoiseSigma => 1f;

    protected override float[] ComputeTimesteps(int n)
    {
        // Ascending integer timesteps; the spacing rules are the DDIM ones.
        var ascending = TimestepSpacing.Descending(_spacing, NumTrainTimesteps, n, _stepsOffset, roundLinspace: true)
            .Reverse().Select(t => (int)t).ToArray();
        int[] plms;
        if (_skipPrkSteps)
        {
            // [t_0 … t_{n-2}, t_{n-2}, t_{n-1}] reversed: the second-largest timestep is evaluated twice
            // (numpy's slices: with one step there is no t_{n-2}, and the schedule is just [t_0]).
            _prkTimesteps = [];
            plms = [.. ascending[..^1], .. ascending.Length >= 2 ? [ascending[^2]] : Array.Empty<int>(), ascending[^1]];
            Array.Reverse(plms);
        }
        else
        {
            if (n < PndmOrder)
                throw new ArgumentOutOfRangeException("numInferenceSteps", $"PNDMScheduler with skip_prk_steps=false needs at least {PndmOrder} steps, got {n}.");
            // Runge–Kutta on the last 4 timesteps with half steps: t, t-δ/2, t-δ/2, t-δ (δ = T/n).
            int half = NumTrainTimesteps / n / 2;
            var prk = ascending[^PndmOrder..].SelectMany(t => new[] { t, t + half }).ToArray();      // 8 values
            var doubled = prk[..^1].SelectMany(t => new[] { t, t }).ToArray();
            _prkTimesteps = doubled[1..^1].Reverse().ToArray();                                      // 12 values
            plms = ascending[..^3].Reverse().ToArray();
        }
        return [.. _prkTimesteps.Concat(plms).Select(t => (float)t)];
    }

    protected override void ResetState()
    {
        foreach (var e in _ets)
            e.Dispose();
        _ets.Clear();
        _curModelOutput?.Dispose();
        _curModelOutput = null;
        _curSample?.Dispose();
        _curSample = null;
        _counter = 0;
    }

    public override Tensor ScaleModelInput(Tensor sample, float timestep) => sample.alias();

    public override Tensor Step(Tensor modelOutput, float timestep, Tensor sample, Generator? generator = null)
    {
        RequireInSchedule(timestep);
        using var scope = NewDisposeScope();
        var prevSample = _counter < _prkTimesteps.Length && !_skipPrkSteps
            ? StepPrk(modelOutput, (int)timestep, sample)
            : StepPlms(modelOutput, (int)timestep, sample);
        _counter++;
        return prevSample.MoveToOuterDisposeScope();
    }

    /// <summary>Classical RK4 in the PNDM transfer: ε = (ε_1 + 2ε_2 + 2ε_3 + ε_4)/6 over four model calls.</summary>
    Tensor StepPrk(Tensor modelOutput, int timestep, Tensor sample)
    {
        int diffToPrev = _counter % 2 == 1 ? 0 : StepRatio / 2;
        int prevTimestep = timestep - diffToPrev;
        int stepStart = _prkTimesteps[_counter / 4 * 4];

        switch (_counter % 4)
        {
            case 0:
                Accumulate(modelOutput * (1.0 / 6));
                _ets.Add(Keep(modelOutput.clone()));
                _curSample?.Dispose();
                _curSample = Keep(sample.clone());
                break;
            case 1:
            case 2:
                Accumulate(modelOutput * (1.0 / 3));
                break;
            case 3:
                modelOutput = _curModelOutput! + modelOutput * (1.0 / 6);
                _curModelOutput!.Dispose();
                _curModelOutput = null;
                break;
        }
        return PrevSample(_curSample ?? sample, stepStart, prevTimestep, modelOutput);
    }

    void Accumulate(Tensor weighted)
    {
        var sum = _curModelOutput is null ? weighted : _curModelOutput + weighted;
        _curModelOutput?.Dispose();
        _curModelOutput = Keep(sum);
    }

    /// <summary>Adams–Bashforth on the ε history (orders 1–4), with the PLMS start when skipping PRK.</summary>
    Tensor StepPlms(Tensor modelOutput, int timestep, Tensor sample)
    {
        if (!_skipPrkSteps && _ets.Count < 3)
            throw new InvalidOperationException("PNDMScheduler: PLMS steps need the 12 Runge–Kutta warm-up steps first.");
        int prevTimestep = timestep - StepRatio;
        if (_counter != 1)
        {
            while (_ets.Count > 3)
            {
                _ets[0].Dispose();
                _ets.RemoveAt(0);
            }
            _ets.Add(Keep(modelOutput.clone()));
        }
        else
        {
            // Second evaluation at the same timestep: redo the first step from its start with the mean ε.
            prevTimestep = timestep;
            timestep += StepRatio;
        }

        Tensor eps;
        using var firstStepStart = _ets.Count == 1 && _counter == 1 ? _curSample : null;
        if (_ets.Count == 1 && _counter == 0)
        {
            eps = modelOutput;
            _curSample?.Dispose();
            _curSample = Keep(sample.clone());
        }
        else if (_ets.Count == 1 && _counter == 1)
        {
            eps = (modelOutput + _ets[^1]) / 2;
            sample = firstStepStart!;
            _curSample = null;
        }
        else if (_ets.Count == 2)
            eps = (3 * _ets[^1] - _ets[^2]) / 2;
        else if (_ets.Count == 3)
            eps = (23 * _ets[^1] - 16 * _ets[^2] + 5 * _ets[^3]) / 12;
        else
            eps = (1.0 / 24) * (55 * _ets[^1] - 59 * _ets[^2] + 37 * _ets[^3] - 9 * _ets[^4]);

        return PrevSample(sample, timestep, prevTimestep, eps);
    }

    /// <summary>PNDM eq. (9), the transfer from t to t-δ:
    /// x_{t-δ} = √(ᾱ_{t-δ}/ᾱ_t)·x_t - (ᾱ_{t-δ} - ᾱ_t)·ε / (ᾱ_t·√(1-ᾱ_{t-δ}) + √(ᾱ_t(1-ᾱ_t)ᾱ_{t-δ})).</summary>
    Tensor PrevSample(Tensor sample, int timestep, int prevTimestep, Tensor modelOutput)
    {
        var (alphaProd, alphaProdPrev, betaProd, betaProdPrev) = AlphaMath.StepAlphas(NoiseSchedule, timestep, prevTimestep, _finalAlphaCumprod);

        if (PredictionType == "v_prediction")
            modelOutput = MathF.Sqrt(alphaProd) * modelOutput + MathF.Sqrt(betaProd) * sample;

        float sampleCoeff = MathF.Sqrt(alphaProdPrev / alphaProd);
        float modelOutputDenomCoeff = alphaProd * MathF.Sqrt(betaProdPrev) + MathF.Sqrt(alphaProd * betaProd * alphaProdPrev);
        return sampleCoeff * sample - (alphaProdPrev - alphaProd) * modelOutput / modelOutputDenomCoeff;
    }

    /// <summary>√ᾱ_t·x_0 + √(1-ᾱ_t)·ε.</summary>
    public override Tensor AddNoise(Tensor original, Tensor noise, float timestep)
    {
        RequireInSchedule(timestep);
        return AlphaMath.AddNoise(original, noise, NoiseSchedule.AlphasCumprod[(int)timestep]);
    }
}
