using static TorchSharp.torch;

namespace SharpDiffusion.Schedulers;

/// <summary>
/// Denoising diffusion implicit models (DDIM, arXiv 2010.02502), eq. (12):
/// x_{t-1} = √ᾱ_{t-1}·x̂_0 + √(1-ᾱ_{t-1}-σ_t²)·ε̂ + σ_t·z, with σ_t = η·√((1-ᾱ_{t-1})/(1-ᾱ_t)·(1-ᾱ_t/ᾱ_{t-1})) (eq. 16).
/// η = 0 (the default) is deterministic; η > 0 draws z from the generator.
/// </summary>
public sealed class DDIMScheduler : SchedulerBase
{
    readonly string _spacing;
    readonly int _stepsOffset;
    readonly float _finalAlphaCumprod;
    readonly SampleClipping _clipping;

    public DDIMScheduler(SchedulerConfig config) : base(config, NoiseSchedule.FromConfig(config, zeroSnr: ZeroSnr.Rescale))
    {
        _spacing = config.GetString("timestep_spacing", TimestepSpacing.Leading);
        _stepsOffset = config.GetInt("steps_offset", 0);
        // The last step has no ᾱ_{t-1}: 1 (set_alpha_to_one) or ᾱ_0 (SD's configs).
        _finalAlphaCumprod = config.GetBool("set_alpha_to_one", true) ? 1f : NoiseSchedule.AlphasCumprod[0];
        _clipping = SampleClipping.FromConfig(config);
        double eta = config.GetDouble("eta", 0);   // not a diffusers config key: the pipeline's eta (--eta)
        Eta = eta is >= 0 and <= 100 ? (float)eta
            : throw new ArgumentOutOfRangeException(nameof(config), $"DDIMScheduler: eta must be between 0 and 100 (1 = DDPM-like noise), got {eta}.");
    }

    public override string Name => "DDIMScheduler";
    public override float InitNoiseSigma => 1f;

    /// <summary>η of eq. (16): 0 = DDIM, 1 = DDPM-like stochasticity (diffusers' <c>step(eta=...)</c>, which the
    /// pipeline passes as <c>eta</c>); the config key <c>eta</c> (<c>--eta</c>) sets it.</summary>
    public float Eta { get; set; }

    /// <summary>Re-derive ε̂ from the clipped x̂_0 (diffusers' <c>use_clipped_model_output</c>, as in Glide).</summary>
    public bool UseClippedModelOutput { get; set; }

    protected override float[] ComputeTimesteps(int n) =>
        [.. TimestepSpacing.Descending(_spacing, NumTrainTimesteps, n, _stepsOffset, roundLinspace: true).Select(t => (float)t)];

    public override Tensor ScaleModelInput(Tensor sample, float timestep) => sample.alias();

    public override Tensor Step(Tensor modelOutput, float timestep, Tensor sample, Generator? generator = null)
    {
        RequireInSchedule(timestep);
        int t = (int)timestep;
        var (alphaProd, alphaProdPrev, betaProd, betaProdPrev) = AlphaMath.StepAlphas(NoiseSchedule, t, t - StepRatio, _finalAlphaCumprod);

        using var scope = NewDisposeScope();
        var (predOriginal, predEpsilon) = AlphaMath.Predict(PredictionType, modelOutput, sample, alphaProd);
        predOriginal = _clipping.Apply(predOriginal);

        float variance = betaProdPrev / betaProd * (1f - alphaProd / alphaProdPrev);
        float stdDev = Eta * MathF.Sqrt(variance);
        if (UseClippedModelOutput)
            predEpsilon = (sample - MathF.Sqrt(alphaProd) * predOriginal) / MathF.Sqrt(betaProd);

        var direction = MathF.Sqrt(1f - alphaProdPrev - stdDev * stdDev) * predEpsilon;   // "pointing to x_t"
        var prevSample = MathF.Sqrt(alphaProdPrev) * predOriginal + direction;
        if (Eta > 0)
            prevSample = prevSample + stdDev * Noise.RandnLike(modelOutput, generator);
        return prevSample.MoveToOuterDisposeScope();
    }

    /// <summary>√ᾱ_t·x_0 + √(1-ᾱ_t)·ε.</summary>
    public override Tensor AddNoise(Tensor original, Tensor noise, float timestep)
    {
        RequireInSchedule(timestep);
        return AlphaMath.AddNoise(original, noise, NoiseSchedule.AlphasCumprod[(int)timestep]);
    }
}
