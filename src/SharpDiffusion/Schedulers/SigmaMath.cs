using TorchSharp;
using static TorchSharp.torch;

namespace SharpDiffusion.Schedulers;

/// <summary>What replaces the σ's interpolated at the spaced timesteps: <c>use_karras_sigmas</c>,
/// <c>use_exponential_sigmas</c>, <c>use_beta_sigmas</c>, A1111's "SGM Uniform" and "Align Your Steps" (at most one),
/// or a list the user gives (<see cref="SigmaSchedule"/>).</summary>
public enum SigmaSpacing { Interpolated, Karras, Exponential, Beta, SgmUniform, AlignYourSteps, CustomSigmas, CustomTimesteps }

/// <summary>
/// Formulas shared by the k-diffusion style (σ-parameterised) schedulers: x_t = x_0 + σ·ε.
/// </summary>
public static class SigmaMath
{
    /// <summary>σ at each (possibly fractional) timestep, linearly interpolated in t from the training σ
    /// (<c>np.interp</c> in float64).</summary>
    public static double[] InterpolateSigmas(IReadOnlyList<double> timesteps, NoiseSchedule schedule) =>
        timesteps.Select(t => NumPy.Interp(t, schedule.Sigmas)).ToArray();

    /// <summary>The schedule of the discrete k-diffusion samplers (Euler, Euler ancestral, LMS, Heun, KDPM2): the
    /// spaced timesteps (fractional for linspace, stored in float32 as diffusers does), σ interpolated at them,
    /// and with <paramref name="useKarrasSigmas"/> Karras σ's over [σ_min, σ_max] of that range (or the given
    /// bounds, Euler's sigma_min/sigma_max) with the timesteps of those σ's, rounded to integers when
    /// <paramref name="roundKarrasTimesteps"/> (the KDPM2 samplers) and fractional otherwise.
    /// Returns n timesteps and n+1 float32 σ's ending in 0.</summary>
    public static (float[] Timesteps, float[] Sigmas) DiscreteSchedule(NoiseSchedule schedule, string spacing, int n, int stepsOffset,
        bool useKarrasSigmas, bool roundKarrasTimesteps, double? sigmaMin = null, double? sigmaMax = null) =>
        DiscreteSchedule(schedule, spacing, n, stepsOffset, useKarrasSigmas ? new SigmaSchedule(SigmaSpacing.Karras) : SigmaSchedule.Interpolated,
            roundKarrasTimesteps, sigmaMin, sigmaMax);

    /// <summary><see cref="DiscreteSchedule(NoiseSchedule, string, int, int, bool, bool, double?, double?)"/> with any
    /// <see cref="SigmaSchedule"/>: exponential and beta σ's come out of torch as float32, Karras σ's out of numpy as
    /// float64; either way ln σ is taken in float64 (numpy promotes the 0-d float32 σ against the 1e-10 floor).
    /// SGM Uniform's timesteps are the evenly spaced ones themselves; AYS and custom σ's get theirs from
    /// <see cref="SigmaToT"/>. A custom σ list ends where it says; every other schedule ends at 0.</summary>
    public static (float[] Timesteps, float[] Sigmas) DiscreteSchedule(NoiseSchedule schedule, string spacing, int n, int stepsOffset,
        SigmaSchedule choice, bool roundKarrasTimesteps, double? sigmaMin = null, double? sigmaMax = null)
    {
        choice.RequireSteps(n);
        var timesteps = TimestepSpacing.Descending(spacing, schedule.NumTrainTimesteps, n, stepsOffset, roundLinspace: false)
            .Select(t => (double)(float)t).ToArray();
        var sigmas = InterpolateSigmas(timesteps, schedule);
        double min = sigmaMin ?? sigmas[^1], max = sigmaMax ?? sigmas[0];
        float last = 0f;
        switch (choice.Spacing)
        {
            case SigmaSpacing.Karras:
                sigmas = KarrasSigmas(min, max, n);
                timesteps = sigmas.Select(s => SigmaToT(s, schedule)).Select(t => roundKarrasTimesteps ? Math.Round(t) : t).ToArray();
                break;
            case SigmaSpacing.Exponential or SigmaSpacing.Beta:
                var f32 = choice.Spacing == SigmaSpacing.Exponential ? ExponentialSigmas(min, max, n) : BetaSigmas(min, max, n);
                sigmas = [.. f32.Select(s => (double)s)];
                timesteps = [.. f32.Select(s => SigmaToT(s, schedule))];   // not rounded, even where Karras' are (KDPM2)
                break;
            case SigmaSpacing.SgmUniform:
                // Over the whole training range as A1111 does (its σ_min/σ_max are the model's), unless the config bounds it.
                timesteps = SgmUniformTimesteps(schedule, n, sigmaMin, sigmaMax);
                sigmas = [.. timesteps.Select(t => TToSigma(t, schedule))];
                break;
            case SigmaSpacing.AlignYourSteps or SigmaSpacing.CustomSigmas:
                var given = choice.Spacing == SigmaSpacing.AlignYourSteps ? AlignYourSteps.Sigmas(choice.Values!, n) : choice.Values!.ToArray();
                sigmas = [.. given.Take(n).Select(s => (double)(float)s)];   // np.array(sigmas).astype(np.float32)
                timesteps = [.. sigmas.Select(s => SigmaToT(s, schedule))];
                last = (float)given[n];
                break;
            case SigmaSpacing.CustomTimesteps:
                timesteps = [.. choice.Values!.Select(t => (double)(float)t)];
                sigmas = InterpolateSigmas(timesteps, schedule);
                break;
        }
        return ([.. timesteps.Select(t => (float)t)], [.. sigmas.Select(s => (float)s), last]);
    }

    /// <summary>A1111's "SGM Uniform" (sd_schedulers.sgm_uniform): n timesteps evenly spaced from t(σ_max) towards t(σ_min),
    /// <c>linspace(t(σ_max), t(σ_min), n+1)[:-1]</c> in float32, so the last step starts one spacing above t(σ_min).</summary>
    public static double[] SgmUniformTimesteps(NoiseSchedule schedule, int n, double? sigmaMin = null, double? sigmaMax = null)
    {
        double start = SigmaToT(sigmaMax ?? schedule.Sigmas[^1], schedule), end = SigmaToT(sigmaMin ?? schedule.Sigmas[0], schedule);
        using var scope = NewDisposeScope();
        return [.. linspace(start, end, n + 1, dtype: ScalarType.Float32).data<float>().ToArray().Take(n).Select(t => (double)t)];
    }

    /// <summary>k-diffusion's <c>t_to_sigma</c>: σ at a fractional timestep, linear in ln σ between the neighbouring
    /// training steps: exp((1-w)·ln σ_⌊t⌋ + w·ln σ_⌈t⌉), w = t - ⌊t⌋ (the inverse of <see cref="SigmaToT"/>).</summary>
    public static double TToSigma(double t, NoiseSchedule schedule)
    {
        int low = (int)Math.Floor(t), high = (int)Math.Ceiling(t);
        double w = t - low;
        return Math.Exp((1 - w) * schedule.LogSigmas[low] + w * schedule.LogSigmas[high]);
    }

    /// <summary>σ's evenly spaced in ln σ from σ_max to σ_min: exp(torch.linspace(ln σ_max, ln σ_min, n)) in float32.</summary>
    public static float[] ExponentialSigmas(double sigmaMin, double sigmaMax, int n)
    {
        using var scope = NewDisposeScope();
        return linspace(Math.Log(sigmaMax), Math.Log(sigmaMin), n, dtype: ScalarType.Float32).exp().data<float>().ToArray();
    }

    /// <summary>Beta sampling (Lee et al. 2024, arXiv 2407.12173): σ_i = σ_min + ppf(1 - i/(n-1))·(σ_max - σ_min) with the
    /// quantiles of Beta(0.6, 0.6), which crowd the steps at both ends; float64, then float32.</summary>
    public static float[] BetaSigmas(double sigmaMin, double sigmaMax, int n, double alpha = 0.6, double beta = 0.6) =>
        [.. NumPy.Linspace(0, 1, n).Select(r => (float)(sigmaMin + BetaDistribution.Ppf(1 - r, alpha, beta) * (sigmaMax - sigmaMin)))];

    /// <summary>The schedule of DPM-Solver and UniPC for their spaced <paramref name="timesteps"/>: σ interpolated
    /// at them followed by σ(t=0) (the last step ends there, not at 0); with <paramref name="useKarrasSigmas"/>
    /// Karras σ's over the whole training range, the last one repeated, and their rounded timesteps.
    /// Returns n timesteps and n+1 float32 σ's.</summary>
    public static (float[] Timesteps, float[] Sigmas) MultistepSchedule(NoiseSchedule schedule, double[] timesteps, int n, bool useKarrasSigmas) =>
        MultistepSchedule(schedule, timesteps, n, useKarrasSigmas ? SigmaSpacing.Karras : SigmaSpacing.Interpolated);

    /// <summary><see cref="MultistepSchedule(NoiseSchedule, double[], int, bool)"/> for DPM-Solver's spacings. Exponential
    /// and beta σ's (diffusers ≥ 0.32, numpy float64 over the whole training range [σ(0), σ(T−1)]): their timesteps are
    /// <see cref="SigmaToT"/> truncated to integers (torch's int64 cast) and the last σ is 0 (final_sigmas_type "zero").</summary>
    public static (float[] Timesteps, float[] Sigmas) MultistepSchedule(NoiseSchedule schedule, double[] timesteps, int n, SigmaSpacing spacing)
    {
        float[] trainSigmas = schedule.Sigmas;
        switch (spacing)
        {
            case SigmaSpacing.Karras:
                var karras = KarrasSigmas(trainSigmas[0], trainSigmas[^1], n);
                timesteps = karras.Select(s => Math.Round(SigmaToT(s, schedule))).ToArray();
                return ([.. timesteps.Select(t => (float)t)], [.. karras.Select(s => (float)s), (float)karras[^1]]);
            case SigmaSpacing.Exponential or SigmaSpacing.Beta:
                double min = trainSigmas[0], max = trainSigmas[^1];
                double[] sigmas = spacing == SigmaSpacing.Exponential
                    ? [.. NumPy.Linspace(Math.Log(max), Math.Log(min), n).Select(Math.Exp)]
                    : [.. NumPy.Linspace(0, 1, n).Select(r => min + BetaDistribution.Ppf(1 - r, 0.6, 0.6) * (max - min))];
                return ([.. sigmas.Select(s => (float)Math.Truncate(SigmaToT(s, schedule)))], [.. sigmas.Select(s => (float)s), 0f]);
            case SigmaSpacing.Interpolated:
                var interpolated = InterpolateSigmas(timesteps, schedule);
                return ([.. timesteps.Select(t => (float)t)], [.. interpolated.Select(s => (float)s), trainSigmas[0]]);
            default:
                throw new NotSupportedException($"Multistep solvers take interpolated, Karras, exponential or beta sigmas, not {spacing}.");
        }
    }

    /// <summary>Karras et al. 2022, eq. 5 with ρ = 7: σ_i = (σ_max^(1/ρ) + i/(n-1)·(σ_min^(1/ρ) - σ_max^(1/ρ)))^ρ.</summary>
    public static double[] KarrasSigmas(double sigmaMin, double sigmaMax, int n)
    {
        const double rho = 7.0;
        double minInvRho = Math.Pow(sigmaMin, 1 / rho);
        double maxInvRho = Math.Pow(sigmaMax, 1 / rho);
        return NumPy.Linspace(0, 1, n).Select(ramp => Math.Pow(maxInvRho + ramp * (minInvRho - maxInvRho), rho)).ToArray();
    }

    /// <summary>The fractional training timestep whose σ is <paramref name="sigma"/>: linear interpolation of
    /// t in ln σ between the two neighbouring training steps (diffusers' <c>_sigma_to_t</c>; the float32
    /// ln σ table and its float32 differences as numpy computes them).</summary>
    public static double SigmaToT(double sigma, NoiseSchedule schedule)
    {
        var logSigmas = schedule.LogSigmas;
        double logSigma = Math.Log(Math.Max(sigma, 1e-10));
        // low = the last training step with ln σ_t <= ln σ (the table increases with t), at most len-2.
        // count = how many entries are <= ln σ, by bisection (a linear scan made Karras schedules O(n·T)).
        int lo = 0, hi = logSigmas.Length;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (logSigma - logSigmas[mid] >= 0) lo = mid + 1; else hi = mid;
        }
        int count = lo;
        int low = Math.Clamp(count - 1, 0, logSigmas.Length - 2);
        int high = low + 1;
        float lowLog = logSigmas[low], highLog = logSigmas[high];
        double w = (lowLog - logSigma) / (double)(lowLog - highLog);
        w = Math.Clamp(w, 0, 1);
        return (1 - w) * low + w * high;
    }

    /// <summary><see cref="SigmaToT"/> for a float32 σ held in a torch tensor (KDPM2's midpoints): there diffusers'
    /// numpy code runs on tensors, so ln σ and the interpolation weight are float32.</summary>
    public static float SigmaToTFloat32(float sigma, NoiseSchedule schedule)
    {
        var logSigmas = schedule.LogSigmas;
        float logSigma = (float)Math.Log(Math.Max(sigma, 1e-10));
        int count = logSigmas.Count(l => logSigma - l >= 0);
        int low = Math.Clamp(count - 1, 0, logSigmas.Length - 2), high = low + 1;
        float w = Math.Clamp((logSigmas[low] - logSigma) / (logSigmas[low] - logSigmas[high]), 0f, 1f);
        return (float)((1f - w) * (double)low + w * (double)high);
    }

    /// <summary>x / (σ²+1)^½: the model sees unit-variance input (float32 scalar as diffusers' 0-d tensor).</summary>
    public static Tensor ScaleInput(Tensor sample, float sigma)
    {
        // An explicit Scalar held to the end: the implicit float→Scalar temporary may be finalized during the native call.
        using var scale = MathF.Sqrt(sigma * sigma + 1f).ToScalar();
        return sample / scale;
    }

    /// <summary>init_noise_sigma: σ_max for linspace/trailing spacing, (σ_max²+1)^½ for leading (float32).</summary>
    public static float InitNoiseSigma(IEnumerable<float> sigmas, string spacing)
    {
        float max = sigmas.Max();
        return spacing is TimestepSpacing.Linspace or TimestepSpacing.Trailing ? max : MathF.Sqrt(max * max + 1f);
    }

    /// <summary>x_0 + σ·ε: a clean sample noised to level σ (img2img, inpainting).</summary>
    public static Tensor AddNoise(Tensor original, Tensor noise, float sigma)
    {
        using var scope = NewDisposeScope();
        return (original + noise * sigma).MoveToOuterDisposeScope();
    }

    /// <summary>x̂_0 from the model output at noise level σ for the x = x_0 + σ·ε parameterisation:
    /// epsilon: x - σ·ε; v_prediction: v·(-σ/(σ²+1)^½) + x/(σ²+1); sample: the output itself.</summary>
    public static Tensor PredictOriginal(string predictionType, Tensor modelOutput, Tensor sample, float sigma) => predictionType switch
    {
        "epsilon" => sample - sigma * modelOutput,
        "v_prediction" => modelOutput * (-sigma / MathF.Sqrt(sigma * sigma + 1f)) + sample / (sigma * sigma + 1f),
        "sample" or "original_sample" => modelOutput.alias(),
        _ => throw new ArgumentException($"prediction_type '{predictionType}' must be one of 'epsilon', 'v_prediction' or 'sample'"),
    };

    /// <summary>VP coefficients of a k-diffusion σ: α_t = 1/(σ²+1)^½, σ_t = σ·α_t (so x_t = α_t·x_0 + σ_t·ε).</summary>
    public static (float Alpha, float Sigma) AlphaSigma(float sigma)
    {
        float alpha = 1f / MathF.Sqrt(sigma * sigma + 1f);
        return (alpha, sigma * alpha);
    }

    /// <summary>Half log-SNR λ = ln α_t - ln σ_t of a k-diffusion σ, in float32 as diffusers computes it.</summary>
    public static float Lambda(float sigma)
    {
        var (alpha, sigmaT) = AlphaSigma(sigma);
        return Lambda(alpha, sigmaT);
    }

    /// <summary>Half log-SNR λ = ln α_t - ln σ_t from the VP coefficients, in float32.</summary>
    public static float Lambda(float alpha, float sigma) => MathF.Log(alpha) - MathF.Log(sigma);

    /// <summary>α_t·x_0 + σ_t·ε with the VP coefficients of the k-diffusion σ (DPM-Solver, UniPC).</summary>
    public static Tensor AddNoiseVp(Tensor original, Tensor noise, float sigma)
    {
        var (alphaT, sigmaT) = AlphaSigma(sigma);
        using var scope = NewDisposeScope();
        return (alphaT * original + sigmaT * noise).MoveToOuterDisposeScope();
    }

    /// <summary>x̂_0 from the model output for x_t = α_t·x_0 + σ_t·ε (data prediction of DPM-Solver++ and UniPC):
    /// epsilon: (x - σ_t·ε)/α_t; sample: the output itself; v_prediction: α_t·x - σ_t·v.</summary>
    public static Tensor PredictDataVp(string scheduler, string predictionType, Tensor modelOutput, Tensor sample, float alphaT, float sigmaT) => predictionType switch
    {
        "epsilon" => (sample - sigmaT * modelOutput) / alphaT,
        "sample" => modelOutput.alias(),
        "v_prediction" => alphaT * sample - sigmaT * modelOutput,
        _ => throw BadVpPrediction(scheduler, predictionType),
    };

    /// <summary>ε̂ from the model output for x_t = α_t·x_0 + σ_t·ε (noise prediction of DPM-Solver and UniPC):
    /// epsilon: the output itself; sample: (x - α_t·x̂_0)/σ_t; v_prediction: α_t·v + σ_t·x.</summary>
    public static Tensor PredictNoiseVp(string scheduler, string predictionType, Tensor modelOutput, Tensor sample, float alphaT, float sigmaT) => predictionType switch
    {
        "epsilon" => modelOutput.alias(),
        "sample" => (sample - alphaT * modelOutput) / sigmaT,
        "v_prediction" => alphaT * modelOutput + sigmaT * sample,
        _ => throw BadVpPrediction(scheduler, predictionType),
    };

    static ArgumentException BadVpPrediction(string scheduler, string predictionType) =>
        new($"{scheduler}: prediction_type '{predictionType}' must be one of 'epsilon', 'sample' or 'v_prediction'");

    /// <summary>eˣ - 1 rounded to float32 (torch.expm1 on a float32 scalar); double precision keeps it exact
    /// enough for |x| ≳ 1e-5, the series below.</summary>
    public static float Expm1(float x) =>
        Math.Abs(x) < 1e-5f ? (float)(x + 0.5 * (double)x * x) : (float)(Math.Exp(x) - 1.0);
}
