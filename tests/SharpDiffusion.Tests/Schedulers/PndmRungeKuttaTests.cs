using SharpDiffusion.Schedulers;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Schedulers;

/// <summary>PNDM with skip_prk_steps=false has no golden file; these tie its Runge-Kutta warm-up to the
/// golden-checked PLMS path.</summary>
public class PndmRungeKuttaTests
{
    static PNDMScheduler Create(bool skipPrk) =>
        new(SchedulerGolden.Sd14Config().With("skip_prk_steps", skipPrk));

    [Theory]
    [InlineData(7)]
    [InlineData(20)]
    public void Prk_schedule_is_twelve_half_steps_then_the_plms_timesteps(int steps)
    {
        var prk = Create(skipPrk: false);
        prk.SetTimesteps(steps);
        var plms = Create(skipPrk: true);
        plms.SetTimesteps(steps);
        // skip mode: t_0, t_1, t_1, t_2, ... ; PRK mode: 12 RK4 sub-steps over t_0..t_3, then t_3, t_4, ...
        var distinct = plms.Timesteps.Distinct().ToList();
        Assert.Equal(12 + distinct.Count - 3, prk.Timesteps.Count);
        Assert.Equal(distinct.Skip(3), prk.Timesteps.Skip(12));
        int half = prk.NumTrainTimesteps / steps / 2;
        for (int r = 0; r < 3; r++)
        {
            float t = distinct[r];
            Assert.Equal(new[] { t, t - half, t - half, distinct[r + 1] }, prk.Timesteps.Skip(4 * r).Take(4));
        }
    }

    [Fact]
    public void Four_rk_substeps_with_a_constant_model_output_equal_one_plms_step()
    {
        // RK4 weights 1/6 + 1/3 + 1/3 + 1/6 = 1: a constant ε makes the first PRK step the same transfer
        // t_0 -> t_1 that the first (golden-checked) PLMS step makes.
        var golden = Golden.Load("schedulers", "pndm_sd14_20.safetensors");
        var sample = golden["randn_sample"];
        var eps = golden["model_outputs"][0];

        var plms = Create(skipPrk: true);
        plms.SetTimesteps(20);
        var expected = plms.Step(eps, plms.Timesteps[0], sample);

        var prk = Create(skipPrk: false);
        prk.SetTimesteps(20);
        Tensor x = sample;
        for (int i = 0; i < 4; i++)
            x = prk.Step(eps, prk.Timesteps[i], x);
        Assert.True(Golden.MaxAbsDiff(x, expected) <= SchedulerGolden.Tolerance * Golden.MaxAbs(expected));
    }

    [Fact]
    public void Prk_mode_runs_a_whole_schedule()
    {
        var golden = Golden.Load("schedulers", "pndm_sd14_20.safetensors");
        var prk = Create(skipPrk: false);
        prk.SetTimesteps(20);
        Tensor x = golden["randn_sample"];
        var outputs = golden["model_outputs"];
        for (int i = 0; i < prk.Timesteps.Count; i++)
            x = prk.Step(outputs[i % outputs.shape[0]], prk.Timesteps[i], x);
        Assert.False(x.isnan().any().item<bool>());
    }
}
