using static TorchSharp.torch;

namespace SharpDiffusion.Schedulers;

/// <summary>
/// Formulas shared by the k-diffusion style (σ-parameterised) schedulers: x_t = x_0 + σ·ε.
/// </summary>
public static class SigmaMath
{
    /// <summary>σ at each (possibly fractional) timestep, linearly interpolated in t from the training σ
    /// (<c>np.interp</c> in float64).</summary>
    public static double[] InterpolateSigmas(IReadOnlyList<double> timesteps, NoiseSchedule schedule) =>
        timesteps.Select(t => NumPy.Interp(t, schedule.Sigmas)).ToArray();

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
        int count = 0;
        for (int i = 0; i < logSigmas.Length; i++)
            if (logSigma - logSigmas[i] >= 0)
                count++;
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
    public static Tensor ScaleInput(Tensor sample, float sigma) => sample / MathF.Sqrt(sigma * sigma + 1f);

    /// <summary>init_noise_sigma: σ_max for linspace/trailing spacing, (σ_max²+1)^½ for leading (float32).</summary>
    public static float InitNoiseSigma(IEnumerable<float> sigmas, string spacing)
    {
        float max = sigmas.Max();
        return spacing is TimestepSpacing.Linspace or TimestepSpacing.Trailing ? max : MathF.Sqrt(max * max + 1f);
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

    /// <summary>Half log-SNR λ = ln α_t - ln σ_t, in float32 as diffusers computes it.</summary>
    public static float Lambda(float sigma)
    {
        var (alpha, sigmaT) = AlphaSigma(sigma);
        return MathF.Log(alpha) - MathF.Log(sigmaT);
    }

    /// <summary>eˣ - 1 rounded to float32 (torch.expm1 on a float32 scalar); double precision keeps it exact
    /// enough for |x| ≳ 1e-5, the series below.</summary>
    public static float Expm1(float x) =>
        Math.Abs(x) < 1e-5f ? (float)(x + 0.5 * (double)x * x) : (float)(Math.Exp(x) - 1.0);
}
