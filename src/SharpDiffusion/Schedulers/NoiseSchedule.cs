using static TorchSharp.torch;

namespace SharpDiffusion.Schedulers;

/// <summary>How a class handles <c>rescale_betas_zero_snr</c>.</summary>
public enum ZeroSnr
{
    /// <summary>The class has no such option (the key is ignored).</summary>
    NotSupported,
    /// <summary>DDIM, DDPM: rescale β so that ᾱ_T = 0.</summary>
    Rescale,
    /// <summary>Euler, Euler-ancestral: rescale, then ᾱ_T = 2⁻²⁴ so that σ_max stays finite.</summary>
    RescaleWithSigmaFloor,
}

/// <summary>
/// The training noise schedule every scheduler starts from: β_t, ᾱ_t = Π(1-β) and σ_t = ((1-ᾱ_t)/ᾱ_t)^½,
/// t = 0 … num_train_timesteps-1, all float32 as diffusers holds them. β and ᾱ are computed with the same
/// libtorch kernels diffusers calls (float32 linspace, cumprod), so they match bit for bit.
/// </summary>
public sealed class NoiseSchedule
{
    public int NumTrainTimesteps { get; }
    public float[] Betas { get; }
    /// <summary>ᾱ_t.</summary>
    public float[] AlphasCumprod { get; }
    /// <summary>σ_t = ((1-ᾱ_t)/ᾱ_t)^½ in float32 (the k-diffusion noise level of training step t).</summary>
    public float[] Sigmas { get; }
    /// <summary>ln σ_t, float32 (numpy's <c>np.log</c> of the float32 array).</summary>
    public float[] LogSigmas { get; }

    NoiseSchedule(float[] betas, float[] alphasCumprod)
    {
        NumTrainTimesteps = betas.Length;
        Betas = betas;
        AlphasCumprod = alphasCumprod;
        Sigmas = alphasCumprod.Select(SigmaFromAlphaCumprod).ToArray();
        LogSigmas = Sigmas.Select(s => MathF.Log(s)).ToArray();
    }

    /// <summary>σ = ((1-ᾱ)/ᾱ)^½, each operation rounded to float32 as torch does.</summary>
    public static float SigmaFromAlphaCumprod(float alphaCumprod) => MathF.Sqrt((1f - alphaCumprod) / alphaCumprod);

    /// <summary>Builds β and ᾱ from the config keys <c>num_train_timesteps</c>, <c>beta_start</c>, <c>beta_end</c>,
    /// <c>beta_schedule</c>, <c>trained_betas</c> and (where the class has it, <paramref name="zeroSnr"/>)
    /// <c>rescale_betas_zero_snr</c>; the defaults are the calling class's (most diffusers schedulers: 0.0001, 0.02,
    /// "linear"; Heun/KDPM2: 0.00085, 0.012, "linear"; LCM/TCD: 0.00085, 0.012, "scaled_linear").</summary>
    public static NoiseSchedule FromConfig(SchedulerConfig config, double defaultBetaStart = 0.0001, double defaultBetaEnd = 0.02,
        ZeroSnr zeroSnr = ZeroSnr.NotSupported, string defaultBetaSchedule = "linear")
    {
        int numTrain = config.GetInt("num_train_timesteps", 1000);
        if (numTrain < 2)
            throw new ArgumentOutOfRangeException(nameof(config), $"num_train_timesteps must be at least 2, got {numTrain}");
        double betaStart = config.GetDouble("beta_start", defaultBetaStart);
        double betaEnd = config.GetDouble("beta_end", defaultBetaEnd);
        string schedule = config.GetString("beta_schedule", defaultBetaSchedule);

        using var scope = NewDisposeScope();
        Tensor betas;
        if (config.GetDoubleArray("trained_betas") is { } trained)
            betas = tensor(trained.Select(b => (float)b).ToArray());
        else
            betas = schedule switch
            {
                "linear" => linspace(betaStart, betaEnd, numTrain, dtype: ScalarType.Float32),
                // Latent diffusion's schedule: linear in √β.
                "scaled_linear" => linspace(Math.Sqrt(betaStart), Math.Sqrt(betaEnd), numTrain, dtype: ScalarType.Float32).pow(2),
                "squaredcos_cap_v2" => tensor(CosineBetas(numTrain)),
                _ => throw new NotSupportedException($"beta_schedule '{schedule}' is not supported (linear, scaled_linear, squaredcos_cap_v2, or trained_betas)"),
            };

        bool rescale = zeroSnr != ZeroSnr.NotSupported && config.GetBool("rescale_betas_zero_snr", false);
        if (rescale)
            betas = RescaleZeroTerminalSnr(betas);

        var alphasCumprod = (1.0 - betas).cumprod(0).data<float>().ToArray();
        if (rescale && zeroSnr == ZeroSnr.RescaleWithSigmaFloor)
            alphasCumprod[^1] = MathF.Pow(2, -24); // ᾱ_T = 0 would make σ_max infinite: fp16's smallest subnormal instead
        return new NoiseSchedule(betas.data<float>().ToArray(), alphasCumprod);
    }

    /// <summary>Glide's cosine schedule: ᾱ(t) = cos²((t+0.008)/1.008 · π/2), β_i = min(1 - ᾱ(i+1/N)/ᾱ(i/N), 0.999),
    /// computed in double as Python does, then stored as float32.</summary>
    static float[] CosineBetas(int n)
    {
        static double AlphaBar(double t) => Math.Pow(Math.Cos((t + 0.008) / 1.008 * Math.PI / 2), 2);
        var betas = new float[n];
        for (int i = 0; i < n; i++)
            betas[i] = (float)Math.Min(1 - AlphaBar((i + 1) / (double)n) / AlphaBar(i / (double)n), 0.999);
        return betas;
    }

    /// <summary>"Common Diffusion Noise Schedules and Sample Steps are Flawed" (arXiv 2305.08891), Algorithm 1:
    /// shift and scale √ᾱ so that the last step has zero SNR while the first keeps its value.</summary>
    static Tensor RescaleZeroTerminalSnr(Tensor betas)
    {
        var sqrtAlphaBar = (1.0 - betas).cumprod(0).sqrt();
        var first = sqrtAlphaBar[0].clone();
        var last = sqrtAlphaBar[-1].clone();
        sqrtAlphaBar = (sqrtAlphaBar - last) * (first / (first - last));
        var alphaBar = sqrtAlphaBar.pow(2);
        var alphas = cat([alphaBar[..1], alphaBar[1..] / alphaBar[..^1]]);
        return 1.0 - alphas;
    }
}
