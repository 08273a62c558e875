using static TorchSharp.torch;

namespace SharpDiffusion.Schedulers;

/// <summary>
/// Denoising diffusion probabilistic models (DDPM, arXiv 2006.11239): ancestral sampling from the posterior
/// q(x_{t-1} | x_t, x̂_0), eq. (7): mean = √ᾱ_{t-1}β_t/(1-ᾱ_t)·x̂_0 + √α_t(1-ᾱ_{t-1})/(1-ᾱ_t)·x_t,
/// variance β̃_t = (1-ᾱ_{t-1})/(1-ᾱ_t)·β_t, where β_t = 1 - ᾱ_t/ᾱ_{t-1} spans the skipped steps.
/// </summary>
public sealed class DDPMScheduler : SchedulerBase
{
    readonly string _spacing;
    readonly int _stepsOffset;
    readonly string _varianceType;
    readonly SampleClipping _clipping;

    public DDPMScheduler(SchedulerConfig config) : base(config, NoiseSchedule.FromConfig(config, zeroSnr: ZeroSnr.Rescale))
    {
        _spacing = config.GetString("timestep_spacing", TimestepSpacing.Leading);
        _stepsOffset = config.GetInt("steps_offset", 0);
        _varianceType = config.GetString("variance_type", "fixed_small");
        if (_varianceType is not ("fixed_small" or "fixed_small_log" or "fixed_large" or "learned" or "learned_range"))
            throw new NotSupportedException($"DDPMScheduler: variance_type '{_varianceType}' is not supported.");
        _clipping = SampleClipping.FromConfig(config);
    }

    public override string Name => "DDPMScheduler";
    public override float InitNoiseSigma => 1f;

    protected override float[] ComputeTimesteps(int n) =>
        [.. TimestepSpacing.Descending(_spacing, NumTrainTimesteps, n, _stepsOffset, roundLinspace: true).Select(t => (float)t)];

    public override Tensor ScaleModelInput(Tensor sample, float timestep) => sample.alias();

    public override Tensor Step(Tensor modelOutput, float timestep, Tensor sample, Generator? generator = null)
    {
        RequireInSchedule(timestep);
        int t = (int)timestep;
        var (alphaProd, alphaProdPrev, betaProd, betaProdPrev) = AlphaMath.StepAlphas(NoiseSchedule, t, t - StepRatio, finalAlphaCumprod: 1f);
        float currentAlpha = alphaProd / alphaProdPrev;
        float currentBeta = 1f - currentAlpha;

        using var scope = NewDisposeScope();
        Tensor? predictedVariance = null;
        if (_varianceType is "learned" or "learned_range" && modelOutput.shape[1] == sample.shape[1] * 2)
        {
            var halves = modelOutput.split(sample.shape[1], 1);
            (modelOutput, predictedVariance) = (halves[0], halves[1]);
        }

        var (predOriginal, _) = AlphaMath.Predict(PredictionType, modelOutput, sample, alphaProd);
        predOriginal = _clipping.Apply(predOriginal);

        float predOriginalCoeff = MathF.Sqrt(alphaProdPrev) * currentBeta / betaProd;
        float currentSampleCoeff = MathF.Sqrt(currentAlpha) * betaProdPrev / betaProd;
        var prevSample = predOriginalCoeff * predOriginal + currentSampleCoeff * sample;

        if (t > 0)
        {
            var noise = Noise.RandnLike(modelOutput, generator);
            // β̃_t, clamped away from 0 so its log stays finite.
            float variance = Math.Max(betaProdPrev / betaProd * currentBeta, 1e-20f);
            Tensor scaledNoise = _varianceType switch
            {
                "fixed_small" => MathF.Sqrt(variance) * noise,
                "fixed_small_log" => MathF.Exp(0.5f * MathF.Log(variance)) * noise,
                "fixed_large" => MathF.Sqrt(currentBeta) * noise,
                "learned" => predictedVariance!.sqrt() * noise,
                _ => LearnedRangeStd(predictedVariance!, variance, currentBeta) * noise,
            };
            prevSample = prevSample + scaledNoise;
        }
        return prevSample.MoveToOuterDisposeScope();
    }

    /// <summary>Improved DDPM (arXiv 2102.09672) eq. 15: the model output v ∈ [-1, 1] interpolates the log variance
    /// between β̃_t and β_t; returns the standard deviation exp(½·log σ²).</summary>
    static Tensor LearnedRangeStd(Tensor predictedVariance, float minVariance, float maxVariance)
    {
        var frac = (predictedVariance + 1) / 2;
        var logVariance = frac * MathF.Log(maxVariance) + (1 - frac) * MathF.Log(minVariance);
        return exp(0.5 * logVariance);
    }

    /// <summary>√ᾱ_t·x_0 + √(1-ᾱ_t)·ε.</summary>
    public override Tensor AddNoise(Tensor original, Tensor noise, float timestep)
    {
        RequireInSchedule(timestep);
        return AlphaMath.AddNoise(original, noise, NoiseSchedule.AlphasCumprod[(int)timestep]);
    }
}
