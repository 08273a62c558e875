using static TorchSharp.torch;

namespace SharpDiffusion.Schedulers;

/// <summary>
/// Euler's method on the rectified-flow ODE of SD3 and Flux (Esser et al. 2024): x_σ = (1-σ)·x_0 + σ·ε, the model
/// predicts the velocity v = ε - x_0, and a step is x_{i+1} = x_i + (σ_{i+1} - σ_i)·v. Timesteps are σ·T.
/// σ's are spaced linearly, then shifted toward noise: σ' = s·σ/(1 + (s-1)·σ) for a fixed <c>shift</c> s, or, with
/// <c>use_dynamic_shifting</c>, σ' = e^μ/(e^μ + 1/σ - 1) with μ given per call (<see cref="CalculateShift"/>).
/// </summary>
public sealed class FlowMatchEulerDiscreteScheduler : SchedulerBase
{
    readonly double _shift;
    readonly bool _useDynamicShifting;
    readonly double _baseShift, _maxShift;
    readonly int _baseImageSeqLen, _maxImageSeqLen;
    readonly double _sigmaMin, _sigmaMax;
    float[] _sigmas = [];

    public FlowMatchEulerDiscreteScheduler(SchedulerConfig config)
        : base(config, config.GetInt("num_train_timesteps", 1000), predictionType: "flow")
    {
        if (NumTrainTimesteps < 1)
            throw new ArgumentOutOfRangeException(nameof(config), $"FlowMatchEulerDiscreteScheduler: num_train_timesteps must be at least 1, got {NumTrainTimesteps}.");
        _shift = config.GetDouble("shift", 1.0);
        _useDynamicShifting = config.GetBool("use_dynamic_shifting", false);
        _baseShift = config.GetDouble("base_shift", 0.5);
        _maxShift = config.GetDouble("max_shift", 1.15);
        _baseImageSeqLen = config.GetInt("base_image_seq_len", 256);
        _maxImageSeqLen = config.GetInt("max_image_seq_len", 4096);
        if (!(_shift > 0))
            throw new ArgumentOutOfRangeException(nameof(config), $"FlowMatchEulerDiscreteScheduler: shift must be positive, got {_shift}.");

        // diffusers' constructor: the training σ's t/T, t = T…1, in float32, shifted unless the shift is dynamic;
        // set_timesteps spaces between the first and last of these, so a fixed shift is applied twice (as in 0.31).
        int n = NumTrainTimesteps;
        float last = 1f / n, first = 1f; // t/T for t = 1 and t = T
        if (!_useDynamicShifting)
            (first, last) = (ShiftFloat32(first), ShiftFloat32(last));
        (_sigmaMax, _sigmaMin) = (first, last);
    }

    public override string Name => "FlowMatchEulerDiscreteScheduler";
    public override IReadOnlyList<float>? Sigmas => _sigmas;
    /// <summary>Flow-matching pipelines start from unscaled N(0, I) latents.</summary>
    public override float InitNoiseSigma => 1f;
    public bool UseDynamicShifting => _useDynamicShifting;
    protected override bool AcceptsTimestepOptions => true;
    protected override float MaxTimestep => NumTrainTimesteps;

    /// <summary>The pipelines' <c>calculate_shift</c>: μ linear in the image's token count, base_shift at
    /// <paramref name="baseSeqLen"/> tokens and max_shift at <paramref name="maxSeqLen"/> (SD3: 2×2 patches of the latent;
    /// Flux: its packed sequence length). Defaults are the Flux pipeline's.</summary>
    public static double CalculateShift(long imageSeqLen, long baseSeqLen = 256, long maxSeqLen = 4096, double baseShift = 0.5, double maxShift = 1.16)
    {
        double m = (maxShift - baseShift) / (maxSeqLen - baseSeqLen);
        double b = baseShift - m * baseSeqLen;
        return imageSeqLen * m + b;
    }

    /// <summary>The σ's the Flux pipeline passes: linspace(1, 1/n, n) (unshifted; the scheduler shifts them).</summary>
    public static double[] FluxSigmas(int numInferenceSteps) => NumPy.Linspace(1.0, 1.0 / numInferenceSteps, numInferenceSteps);

    /// <summary><see cref="CalculateShift"/> with this config's base/max image sequence lengths and shifts, as the
    /// pipelines call it.</summary>
    public double Mu(long imageSeqLen) => CalculateShift(imageSeqLen, _baseImageSeqLen, _maxImageSeqLen, _baseShift, _maxShift);

    /// <summary>s·σ/(1 + (s-1)·σ) in float32 (diffusers' constructor shifts a float32 tensor).</summary>
    float ShiftFloat32(float sigma)
    {
        float s = (float)_shift;
        return s * sigma / (1f + (s - 1f) * sigma);
    }

    protected override float[] ComputeTimesteps(int n)
    {
        if (_useDynamicShifting && CallOptions.Mu is null)
            throw new ArgumentException("FlowMatchEulerDiscreteScheduler: use_dynamic_shifting needs μ for each call: SetTimesteps(n, new TimestepOptions { Mu = scheduler.Mu(imageSeqLen) }).", "options");
        // float64 as numpy: linspace(σ_max·T, σ_min·T, n)/T, or the pipeline's own σ's.
        double[] sigmas = CallOptions.Sigmas is { } given
            ? [.. given]
            : [.. NumPy.Linspace(_sigmaMax * NumTrainTimesteps, _sigmaMin * NumTrainTimesteps, n).Select(t => t / NumTrainTimesteps)];
        if (_useDynamicShifting)
        {
            double expMu = Math.Exp(CallOptions.Mu!.Value);
            sigmas = [.. sigmas.Select(s => expMu / (expMu + Math.Pow(1 / s - 1, 1.0)))];   // time_shift(μ, 1, σ)
        }
        else
            sigmas = [.. sigmas.Select(s => _shift * s / (1 + (_shift - 1) * s))];
        _sigmas = [.. sigmas.Select(s => (float)s), 0f];
        foreach (float s in _sigmas)
            if (!(s >= 0 && s <= 1))
                throw new ArgumentException($"FlowMatchEulerDiscreteScheduler: σ {s} is outside [0, 1]; give sigmas in (0, 1].", "options");
        return [.. _sigmas[..^1].Select(s => s * NumTrainTimesteps)];   // float32 σ·T
    }

    /// <summary>Flow-matching models take x_t as it is.</summary>
    public override Tensor ScaleModelInput(Tensor sample, float timestep)
    {
        CurrentStepIndex(timestep);
        return sample.alias();
    }

    public override Tensor Step(Tensor modelOutput, float timestep, Tensor sample, Generator? generator = null)
    {
        int i = CurrentStepIndex(timestep);
        using var scope = NewDisposeScope();
        float dt = _sigmas[i + 1] - _sigmas[i];   // negative: toward the data
        var prevSample = (sample.to(ScalarType.Float32) + dt * modelOutput).to(modelOutput.dtype);
        StepIndex = i + 1;
        return prevSample.MoveToOuterDisposeScope();
    }

    /// <summary>diffusers' <c>scale_noise</c> (img2img's start): σ·ε + (1-σ)·x_0 at <paramref name="timestep"/>.</summary>
    public override Tensor AddNoise(Tensor original, Tensor noise, float timestep)
    {
        float sigma = _sigmas[IndexForTimestep(timestep)];
        using var scope = NewDisposeScope();
        return (sigma * noise + (1f - sigma) * original).MoveToOuterDisposeScope();
    }
}
