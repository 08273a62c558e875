using SharpDiffusion.Schedulers;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Schedulers;

/// <summary>
/// <c>--scheduler-option KEY=VALUE</c> (issue 20 item 3): a key the chosen scheduler does not read is refused by name
/// with the valid ones listed, instead of being silently ignored; the model's own scheduler_config.json keys are not
/// (diffusers ignores unknown keys there). A scheduler's options are the keys it asks its config for while it is built.
/// </summary>
public class SchedulerOptionTests
{
    static Dictionary<string, object?> Options(string key, object? value) => new() { [key] = value };

    [Fact]
    public void An_option_the_scheduler_does_not_read_is_refused_with_the_valid_ones_listed()
    {
        // solver_order is a DPM-Solver option: the euler scheduler has no use for it.
        var e = Assert.Throws<ArgumentException>(() =>
            SchedulerFactory.Create("euler", SchedulerGolden.Sd14Config(), Options("solver_order", 3.0)));
        Assert.StartsWith("--scheduler-option solver_order: the euler scheduler has no such option; valid: ", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        var valid = SchedulerFactory.OptionsOf("euler", SchedulerGolden.Sd14Config());
        Assert.Contains("use_karras_sigmas", valid);
        Assert.All(valid, key => Assert.Contains(key, e.Message));
    }

    [Fact]
    public void A_misspelt_option_is_refused_and_every_unknown_one_is_named()
    {
        var options = new Dictionary<string, object?> { ["use_karas_sigmas"] = true, ["timestep_spacin"] = "trailing", ["steps_offset"] = 1.0 };
        var e = Assert.Throws<ArgumentException>(() => SchedulerFactory.Create("DPM++ 2M Karras", SchedulerGolden.Sd14Config(), options));
        Assert.StartsWith("--scheduler-option timestep_spacin, use_karas_sigmas: the DPM++ 2M Karras scheduler has no such options; valid: ", e.Message);
    }

    [Fact]
    public void Without_a_name_the_message_names_the_models_own_scheduler()
    {
        var config = SchedulerGolden.Sd14Config();
        var e = Assert.Throws<ArgumentException>(() => SchedulerFactory.Create(null, config, Options("no_such_key", 1.0)));
        Assert.StartsWith($"--scheduler-option no_such_key: the {config.ClassName} scheduler has no such option", e.Message);
    }

    [Fact]
    public void An_option_the_scheduler_reads_is_applied()
    {
        var scheduler = SchedulerFactory.Create("euler", SchedulerGolden.Sd14Config(), Options("use_karras_sigmas", true));
        Assert.True(scheduler.Config.GetBool("use_karras_sigmas", false));
        var plain = SchedulerFactory.Create("euler", SchedulerGolden.Sd14Config(), null);
        scheduler.SetTimesteps(10);
        plain.SetTimesteps(10);
        Assert.NotEqual(plain.Sigmas, scheduler.Sigmas);
    }

    [Fact]
    public void Keys_of_the_models_file_that_the_scheduler_does_not_read_are_not_refused()
    {
        // The SD v1-4 file is PNDM's: skip_prk_steps and set_alpha_to_one mean nothing to Euler.
        var config = SchedulerGolden.Sd14Config();
        Assert.True(config.Has("skip_prk_steps"));
        Assert.DoesNotContain("skip_prk_steps", SchedulerFactory.OptionsOf("euler", config));
        Assert.Equal("EulerDiscreteScheduler", SchedulerFactory.Create("euler", config, new Dictionary<string, object?>()).Name);
    }

    public static TheoryData<string> AllNames()
    {
        var data = new TheoryData<string>();
        foreach (var n in SchedulerFactory.ValidNames)
            data.Add(n);
        return data;
    }

    /// <summary>The options are what a scheduler reads while it is built: one that read a key only in SetTimesteps or
    /// Step would have that option refused, so no scheduler may.</summary>
    [Theory, MemberData(nameof(AllNames))]
    public void Every_key_a_scheduler_reads_is_read_while_it_is_built(string name)
    {
        var recording = SchedulerGolden.Sd14Config().Recording();
        var scheduler = SchedulerFactory.Create(name, recording);
        var atConstruction = recording.KeysAsked;
        Assert.Contains("num_train_timesteps", atConstruction);

        scheduler.SetTimesteps(4);
        using var generator = new Generator(0);
        var sample = ones(1, 4, 2, 2);
        foreach (float t in scheduler.Timesteps)
        {
            using var scaled = scheduler.ScaleModelInput(sample, t);
            using var output = zeros_like(sample);
            sample = scheduler.Step(output, t, sample, generator);
        }
        using var noisy = scheduler.AddNoise(sample, zeros_like(sample), scheduler.Timesteps[^1]);
        Assert.Equal(atConstruction, recording.KeysAsked);
        (scheduler as IDisposable)?.Dispose();
    }

    /// <summary>Every option a scheduler lists is accepted back with its current value (the list and the refusal agree).</summary>
    [Theory, MemberData(nameof(AllNames))]
    public void Every_listed_option_is_accepted(string name)
    {
        var config = SchedulerGolden.Sd14Config();
        var scheduler = SchedulerFactory.Create(name, config);
        foreach (string key in SchedulerFactory.OptionsOf(name, config))
        {
            var options = new Dictionary<string, object?> { [key] = null }; // null = the scheduler's own default
            (SchedulerFactory.Create(name, config, options) as IDisposable)?.Dispose();
        }
        (scheduler as IDisposable)?.Dispose();
    }
}
