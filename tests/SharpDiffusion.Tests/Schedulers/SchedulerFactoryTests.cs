using SharpDiffusion.Schedulers;

namespace SharpDiffusion.Tests.Schedulers;

public class SchedulerFactoryTests
{
    public static TheoryData<string> AllNames()
    {
        var data = new TheoryData<string>();
        foreach (var n in SchedulerFactory.ValidNames)
            data.Add(n);
        return data;
    }

    [Theory, MemberData(nameof(AllNames))]
    public void Every_listed_name_builds_a_working_scheduler(string name)
    {
        var scheduler = SchedulerFactory.Create(name, SchedulerGolden.Sd14Config());
        var entry = SchedulerFactory.Names.FirstOrDefault(n => n.Name == name);
        Assert.Equal(entry?.ClassName ?? name, scheduler.Name);
        foreach (var (key, value) in entry?.Overrides ?? new Dictionary<string, object>())
            Assert.Equal(value, value switch
            {
                bool b => scheduler.Config.GetBool(key, !b),
                int => scheduler.Config.GetInt(key, -1),
                _ => (object)scheduler.Config.GetString(key, ""),
            });
        scheduler.SetTimesteps(10);
        Assert.NotEmpty(scheduler.Timesteps);
    }

    [Fact]
    public void Names_are_case_insensitive()
    {
        Assert.Equal("LMSDiscreteScheduler", SchedulerFactory.Create("lmsdiscretescheduler", SchedulerConfig.Empty).Name);
        Assert.Equal("LMSDiscreteScheduler", SchedulerFactory.Create("lms karras", SchedulerConfig.Empty).Name);
        Assert.True(SchedulerFactory.Create("lms karras", SchedulerConfig.Empty).Config.GetBool("use_karras_sigmas", false));
    }

    [Fact]
    public void Unknown_name_lists_the_valid_ones()
    {
        var e = Assert.Throws<ArgumentException>(() => SchedulerFactory.Create("no-such-sampler", SchedulerConfig.Empty));
        Assert.Contains("no-such-sampler", e.Message);
        foreach (var name in SchedulerFactory.ValidNames)
            Assert.Contains(name, e.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void FromConfig_builds_the_class_the_model_names()
    {
        var config = SchedulerGolden.Sd14Config();
        Assert.Equal(config.ClassName, SchedulerFactory.FromConfig(config).Name);
    }

    public static TheoryData<string> A1111Names()
    {
        var data = new TheoryData<string>();
        foreach (var n in SchedulerFactory.Names.Where(n => n.IsA1111))
            data.Add(n.Name);
        return data;
    }

    [Theory, MemberData(nameof(A1111Names))]
    public void A1111_name_round_trips(string a1111)
    {
        var scheduler = SchedulerFactory.Create(a1111, SchedulerGolden.Sd14Config());
        Assert.Equal(a1111, SchedulerFactory.A1111Name(scheduler));
    }

    [Fact]
    public void A1111Name_falls_back_to_the_short_name()
    {
        var ddpm = SchedulerFactory.Names.Single(n => n.ClassName == "DDPMScheduler");
        Assert.Equal(ddpm.Name, SchedulerFactory.A1111Name(SchedulerFactory.Create("DDPMScheduler", SchedulerConfig.Empty)));
    }

    [Fact]
    public void The_shared_name_table_cannot_be_changed_by_a_caller()
    {
        // One table serves every caller in the process (a server's jobs): "DPM++ 2M Karras" must stay what it is.
        var entry = SchedulerFactory.Names.Single(n => n.Name == "DPM++ 2M Karras");
        var overrides = Assert.IsAssignableFrom<IDictionary<string, object>>(entry.Overrides);
        Assert.Throws<NotSupportedException>(() => overrides["use_karras_sigmas"] = false);
        Assert.All(SchedulerFactory.Names, n => Assert.IsNotType<Dictionary<string, object>>(n.Overrides));
    }
}
