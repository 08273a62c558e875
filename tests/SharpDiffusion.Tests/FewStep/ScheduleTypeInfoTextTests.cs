using SharpDiffusion.Imaging;
using SharpDiffusion.Schedulers;
using SharpDiffusion.Tests.Cli;
using SharpDiffusion.Tests.Schedulers;

namespace SharpDiffusion.Tests.FewStep;

/// <summary>
/// Issue 25: the infotext's "Schedule type" as AUTOMATIC1111 1.9+ writes it (its sd_schedulers labels, right after
/// "Sampler"), for the schedules the sampler name does not carry. Karras stays in the name ("DPM++ 2M Karras"), which
/// A1111 still reads; the model's own schedule writes nothing, as A1111's "Automatic".
/// </summary>
[Collection(ProcessWide.Settings)]
public class ScheduleTypeInfoTextTests
{
    [Theory]
    [InlineData("euler_ays", "Euler", "Align Your Steps")]
    [InlineData("euler_sgm_uniform", "Euler", "SGM Uniform")]
    [InlineData("lms_exponential", "LMS", "Exponential")]
    [InlineData("heun_beta", "Heun", "Beta")]
    [InlineData("dpmpp_2m_exponential", "DPM++ 2M", "Exponential")]
    [InlineData("dpmpp_2m_beta", "DPM++ 2M", "Beta")]
    [InlineData("DPM++ 2M Karras", "DPM++ 2M Karras", null)]
    [InlineData("Euler a", "Euler a", null)]
    public void Each_schedule_has_a1111s_label(string scheduler, string sampler, string? label)
    {
        var s = SchedulerFactory.Create(scheduler, SchedulerGolden.Sd14Config());
        Assert.Equal(sampler, SchedulerFactory.A1111Name(s));
        Assert.Equal(label, SchedulerFactory.A1111ScheduleLabel(s));
    }

    [Fact]
    public void Generate_writes_schedule_type_after_the_sampler_and_png_info_reads_it_back()
    {
        using var dir = new TempDir();
        string output = dir.File("ays.png");
        var (code, _, err) = GenerateCommandTests.Run("generate", "--model", Golden.Path("models", "tiny-sd"), "--prompt", "a lighthouse",
            "--seed", "4", "--steps", "3", "--guidance", "5", "--scheduler", "euler_ays", "--output", output);
        Assert.True(code == 0, err);
        string parameters = PngFile.ReadText(File.ReadAllBytes(output))["parameters"];
        Assert.Contains("Steps: 3, Sampler: Euler, Schedule type: Align Your Steps, CFG scale: 5, Seed: 4, ", parameters);
        var read = InfoText.Parse(parameters);
        Assert.Equal("Euler", read["Sampler"]);
        Assert.Equal("Align Your Steps", read["Schedule type"]);
    }
}
