using SharpDiffusion.Schedulers;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Schedulers;

/// <summary>Clear errors instead of diffusers' silent misbehaviour or index errors.</summary>
public class SchedulerValidationTests
{
    public static TheoryData<string> Classes()
    {
        var data = new TheoryData<string>();
        foreach (var n in SchedulerFactory.ValidNames.Where(n => n.EndsWith("Scheduler")).Distinct())
            data.Add(n);
        return data;
    }

    static IScheduler Create(string cls) => SchedulerFactory.Create(cls, SchedulerGolden.Sd14Config());

    [Theory, MemberData(nameof(Classes))]
    public void Zero_steps_is_out_of_range(string cls)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Create(cls).SetTimesteps(0));
        Assert.Contains("inference steps", e.Message);
    }

    /// <summary>One step is a valid request (PNDM once indexed past its one-element schedule); the loop runs to the end.</summary>
    [Theory, MemberData(nameof(Classes))]
    public void One_step_schedules_run(string cls)
    {
        var scheduler = Create(cls);
        scheduler.SetTimesteps(1);
        Assert.NotEmpty(scheduler.Timesteps);
        using var generator = new TorchSharp.torch.Generator(0);
        var sample = TorchSharp.torch.ones(1, 4, 2, 2);
        foreach (float t in scheduler.Timesteps)
        {
            using var scaled = scheduler.ScaleModelInput(sample, t);
            using var output = TorchSharp.torch.zeros_like(sample);
            var next = scheduler.Step(output, t, sample, generator);
            sample.Dispose();
            sample = next;
        }
        Assert.False(sample.isnan().any().item<bool>());
        sample.Dispose();
        (scheduler as IDisposable)?.Dispose();
    }

    [Theory, MemberData(nameof(Classes))]
    public void More_steps_than_training_timesteps_is_out_of_range(string cls)
    {
        var scheduler = Create(cls);
        int numTrain = SchedulerGolden.Sd14Config().GetInt("num_train_timesteps", 1000);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => scheduler.SetTimesteps(numTrain + 1));
        Assert.Contains(numTrain.ToString(), e.Message);
    }

    [Theory, MemberData(nameof(Classes))]
    public void Step_with_a_timestep_not_in_the_schedule_throws(string cls)
    {
        var scheduler = Create(cls);
        scheduler.SetTimesteps(10);
        float notInSchedule = scheduler.Timesteps.Max() + 0.5f;
        using var x = zeros(1, 4, 8, 8);
        var e = Assert.Throws<ArgumentException>(() => scheduler.Step(x, notInSchedule, x));
        Assert.Contains("not in the schedule", e.Message);
    }

    [Theory, MemberData(nameof(Classes))]
    public void Step_before_SetTimesteps_throws(string cls)
    {
        using var x = zeros(1, 4, 8, 8);
        Assert.Throws<InvalidOperationException>(() => Create(cls).Step(x, 1, x));
    }

    [Fact]
    public void Counter_schedulers_reject_a_timestep_out_of_order()
    {
        var scheduler = Create("LMSDiscreteScheduler");
        scheduler.SetTimesteps(10);
        using var x = zeros(1, 4, 8, 8);
        scheduler.Step(x, scheduler.Timesteps[0], x).Dispose();
        var e = Assert.Throws<ArgumentException>(() => scheduler.Step(x, scheduler.Timesteps[2], x));
        Assert.Contains("expected timestep", e.Message);
    }
}
