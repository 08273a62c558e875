using SharpDiffusion.Schedulers;

namespace SharpDiffusion.Tests.Schedulers;

/// <summary>SchedulerConfig reproduces diffusers' from_config: missing keys and keys listed in
/// _use_default_values take the new class's default; explicit keys and overrides win.</summary>
public class SchedulerConfigTests
{
    [Fact]
    public void Sd14_config_names_its_class_and_lacks_timestep_spacing()
    {
        var config = SchedulerGolden.Sd14Config();
        Assert.Equal("PNDMScheduler", config.ClassName);
        Assert.False(config.Has("timestep_spacing"));
        Assert.Equal("linspace", config.GetString("timestep_spacing", "linspace"));
        Assert.Equal("leading", config.GetString("timestep_spacing", "leading"));
        Assert.True(config.GetBool("skip_prk_steps", false));
        Assert.Null(config.GetDoubleArray("trained_betas"));
    }

    [Fact]
    public void Keys_listed_in_use_default_values_take_the_callers_default()
    {
        var config = SchedulerConfig.Parse("""{"timestep_spacing": "leading", "steps_offset": 1, "_use_default_values": ["timestep_spacing"]}""");
        Assert.Equal("linspace", config.GetString("timestep_spacing", "linspace"));
        Assert.Equal(1, config.GetInt("steps_offset", 0));
        Assert.DoesNotContain("timestep_spacing", config.Keys);
    }

    [Fact]
    public void With_overrides_a_key_even_if_it_was_a_recorded_default()
    {
        var config = SchedulerConfig.Parse("""{"timestep_spacing": "linspace", "_use_default_values": ["timestep_spacing"]}""")
            .With("timestep_spacing", "trailing");
        Assert.Equal("trailing", config.GetString("timestep_spacing", "leading"));
    }

    [Fact]
    public void Config_saved_by_LMS_gives_PNDM_its_own_leading_spacing()
    {
        // index.json's lms_sd14 config is what LMSDiscreteScheduler.from_config(sd14) holds: timestep_spacing
        // "linspace" is a recorded default, so PNDM built from it must still use leading spacing.
        string lmsSavedConfig = SchedulerGolden.ReadPythonJson("schedulers", "index.json").AsArray()
            .Single(e => e!["file"]!.GetValue<string>().EndsWith("lms_sd14_20.safetensors"))!["config"]!.ToJsonString();
        var pndm = SchedulerFactory.Create("PNDMScheduler", SchedulerConfig.Parse(lmsSavedConfig));
        pndm.SetTimesteps(20);
        var golden = Golden.Load("schedulers", "pndm_sd14_20.safetensors");
        Assert.Equal(golden["timesteps"].data<long>().Select(t => (float)t), pndm.Timesteps);
    }

    [Fact]
    public void Python_non_finite_literals_are_read()
    {
        var config = SchedulerConfig.Parse("""{"lambda_min_clipped": -Infinity, "name": "-Infinity in a string", "x": NaN}""");
        Assert.Equal(double.NegativeInfinity, config.GetDouble("lambda_min_clipped", 0));
        Assert.Equal("-Infinity in a string", config.GetString("name", ""));
        Assert.True(double.IsNaN(config.GetDouble("x", 0)));
    }

    [Fact]
    public void Unknown_keys_are_ignored_and_nulls_mean_default()
    {
        var config = SchedulerConfig.Parse("""{"_class_name": "EulerDiscreteScheduler", "some_future_key": [1, 2], "sigma_min": null}""");
        Assert.Null(config.GetDoubleOrNull("sigma_min"));
        Assert.Equal(0.5, config.GetDouble("sigma_min", 0.5));
    }

    [Fact]
    public void Wrong_types_are_reported_with_the_key()
    {
        var config = SchedulerConfig.Parse("""{"steps_offset": "one", "num_train_timesteps": 1000.5}""");
        Assert.Contains("steps_offset", Assert.Throws<FormatException>(() => config.GetInt("steps_offset", 0)).Message);
        Assert.Contains("num_train_timesteps", Assert.Throws<FormatException>(() => config.GetInt("num_train_timesteps", 0)).Message);
    }

    [Fact]
    public void Trained_betas_replace_the_beta_schedule()
    {
        var sd14 = new LMSDiscreteScheduler(SchedulerGolden.Sd14Config());
        var betas = sd14.NoiseSchedule.Betas.Select(b => (double)b).ToArray();
        var trained = new LMSDiscreteScheduler(SchedulerConfig.Empty.With("trained_betas", betas));
        Assert.Equal(sd14.NoiseSchedule.AlphasCumprod, trained.NoiseSchedule.AlphasCumprod);
    }
}
