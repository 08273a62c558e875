using SharpDiffusion.Schedulers;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Schedulers;

/// <summary>
/// Noise-drawing paths without a golden trajectory (DDIM η &gt; 0, DPM-Solver++ 2M SDE, KDPM2 ancestral).
/// Two identical schedulers stepped with differently seeded generators must differ by exactly
/// c·(z_A - z_B), where z are the generators' next draws and c the noise scale of the method's formula
/// (computed here in double from the golden ᾱ / the golden-checked σ); and each step must draw exactly one
/// tensor (or none), so a generator shared with the pipeline stays in step. Inputs come from a golden file.
/// </summary>
public class StochasticStepTests
{
    static (Tensor Sample, Tensor ModelOutputs, float[] AlphasCumprod) Inputs(string golden)
    {
        var g = Golden.Load("schedulers", golden + ".safetensors");
        return (g["init_sample"], g["model_outputs"], g["alphas_cumprod"].data<float>().ToArray());
    }

    /// <summary>Steps two copies through the whole schedule with generators seeded 1 and 2; for each step returns
    /// (prev_A - prev_B, z_A - z_B) where z are the draws a fresh generator makes at that point, or null when the
    /// step must not draw. Asserts the generators end where exactly the expected draws leave them.</summary>
    static List<(Tensor PrevDiff, Tensor? NoiseDiff, double Magnitude)> Run(Func<IScheduler> create, int steps, Tensor sample, Tensor modelOutputs, Func<int, bool> draws)
    {
        IScheduler a = create(), b = create();
        a.SetTimesteps(steps);
        b.SetTimesteps(steps);
        using var genA = new Generator(1);
        using var genB = new Generator(2);
        using var refA = new Generator(1);
        using var refB = new Generator(2);
        var result = new List<(Tensor, Tensor?, double)>();
        Tensor xA = sample, xB = sample;
        for (int i = 0; i < a.Timesteps.Count; i++)
        {
            float t = a.Timesteps[i];
            var eps = modelOutputs[i % modelOutputs.shape[0]];
            // Both start from the same x so the difference is this step's noise only.
            var prevA = a.Step(eps, t, xA, genA);
            var prevB = b.Step(eps, t, xA, genB);
            Tensor? noiseDiff = draws(i) ? randn(sample.shape, generator: refA) - randn(sample.shape, generator: refB) : null;
            result.Add((prevA - prevB, noiseDiff, Golden.MaxAbs(prevA)));
            xA = prevA;
        }
        Assert.Equal(randn([8], generator: refA).data<float>().ToArray(), randn([8], generator: genA).data<float>().ToArray());
        Assert.Equal(randn([8], generator: refB).data<float>().ToArray(), randn([8], generator: genB).data<float>().ToArray());
        return result;
    }

    /// <summary>prev_A - prev_B = scale·(z_A - z_B), within the float32 rounding of the results themselves
    /// (1e-5 of their magnitude: the difference of two rounded samples carries their rounding).</summary>
    static void AssertScaledNoise((Tensor PrevDiff, Tensor? NoiseDiff, double Magnitude) step, double scale, string what)
    {
        var (prevDiff, noiseDiff, magnitude) = step;
        if (noiseDiff is null || scale == 0)
        {
            Assert.True(Golden.MaxAbs(prevDiff) == 0, $"{what}: result depends on the generator");
            return;
        }
        using var expected = noiseDiff * scale;
        Assert.True(Golden.MaxAbsDiff(prevDiff, expected) <= SchedulerGolden.Tolerance * magnitude,
            $"{what}: noise enters with the wrong scale (max |diff| {Golden.MaxAbsDiff(prevDiff, expected):E3})");
    }

    [Theory]
    [InlineData(1.0)]
    [InlineData(0.5)]
    public void DDIM_with_eta_adds_eta_scaled_posterior_noise(double eta)
    {
        var (sample, outputs, acp) = Inputs("ddim_sd14_20");
        var config = SchedulerGolden.Sd14Config();
        IScheduler Create() => new DDIMScheduler(config) { Eta = (float)eta };
        var probe = Create();
        probe.SetTimesteps(20);
        var steps = Run(Create, 20, sample, outputs, _ => true);
        int stride = probe.NumTrainTimesteps() / 20;
        for (int i = 0; i < steps.Count; i++)
        {
            int t = (int)probe.Timesteps[i], prev = t - stride;
            double at = acp[t], aPrev = prev >= 0 ? acp[prev] : acp[0]; // set_alpha_to_one = false
            // DDIM eq. (16): σ_t = η·√((1-ᾱ_{t-1})/(1-ᾱ_t))·√(1-ᾱ_t/ᾱ_{t-1})
            double sigma = eta * Math.Sqrt((1 - aPrev) / (1 - at)) * Math.Sqrt(1 - at / aPrev);
            AssertScaledNoise(steps[i], sigma, $"step {i}");
        }
    }

    [Fact]
    public void DDIM_with_eta_zero_draws_nothing()
    {
        var (sample, outputs, _) = Inputs("ddim_sd14_20");
        var steps = Run(() => new DDIMScheduler(SchedulerGolden.Sd14Config()), 20, sample, outputs, _ => false);
        foreach (var (diff, _, _) in steps)
            Assert.True(Golden.MaxAbs(diff) == 0);
    }

    [Theory]
    [InlineData("DPM++ 2M SDE")]
    [InlineData("DPM++ 2M SDE Karras")]
    public void DPMSolver_sde_adds_sigma_t_sqrt_one_minus_exp_minus_2h_noise(string name)
    {
        var (sample, outputs, _) = Inputs("dpmpp_2m_sd14_20");
        var config = SchedulerGolden.Sd14Config();
        var probe = SchedulerFactory.Create(name, config);
        probe.SetTimesteps(20);
        var steps = Run(() => SchedulerFactory.Create(name, config), 20, sample, outputs, _ => true);
        var sigmas = probe.Sigmas!;
        for (int i = 0; i < steps.Count; i++)
        {
            // x_t = α_t·x_0 + σ_t·ε with α = 1/√(σ²+1); SDE-DPM-Solver++ noise: σ_t·√(1 - e^{-2h}), h = λ_t - λ_s.
            static (double Alpha, double Sigma) Vp(double s) => (1 / Math.Sqrt(s * s + 1), s / Math.Sqrt(s * s + 1));
            var (alphaT, sigmaT) = Vp(sigmas[i + 1]);
            var (alphaS, sigmaS) = Vp(sigmas[i]);
            double h = Math.Log(alphaT / sigmaT) - Math.Log(alphaS / sigmaS);
            AssertScaledNoise(steps[i], sigmaT * Math.Sqrt(1 - Math.Exp(-2 * h)), $"{name} step {i}");
        }
    }

    [Fact]
    public void KDPM2_ancestral_draws_every_call_and_adds_sigma_up_noise_on_the_second()
    {
        var (sample, outputs, _) = Inputs("kdpm2_sd14_20");
        var config = SchedulerGolden.Sd14Config();
        var probe = new KDPM2AncestralDiscreteScheduler(config);
        probe.SetTimesteps(20);
        Assert.Equal(2 * 20 - 1, probe.Timesteps.Count);
        // The distinct σ_0 … σ_{n-1}, 0 (the schedule repeats each inner σ).
        var sigmas = probe.Sigmas!.Where((_, k) => k == 0 || k % 2 == 1).ToArray();
        var steps = Run(() => new KDPM2AncestralDiscreteScheduler(config), 20, sample, outputs, _ => true);
        for (int i = 0; i < steps.Count; i++)
        {
            bool secondCall = i % 2 == 1;
            double scale = 0;
            if (secondCall)
            {
                int k = (i + 1) / 2; // the step from σ_{k-1} to σ_k
                double from = sigmas[k - 1], to = sigmas[k];
                scale = Math.Sqrt(to * to * (from * from - to * to) / (from * from)); // σ_up
            }
            AssertScaledNoise(secondCall ? steps[i] : (steps[i].PrevDiff, null, steps[i].Magnitude), scale, $"call {i}");
        }
    }
}

static class SchedulerTestExtensions
{
    public static int NumTrainTimesteps(this IScheduler s) => ((SchedulerBase)s).NumTrainTimesteps;
}
