using Xunit.Abstractions;

namespace SharpDiffusion.Tests.Schedulers;

/// <summary>One test per golden/schedulers file, grouped by diffusers class.</summary>
public class SchedulerGoldenTests(ITestOutputHelper output)
{
    public static TheoryData<string> Lms => SchedulerGolden.NamesOf("LMSDiscreteScheduler");
    public static TheoryData<string> Pndm => SchedulerGolden.NamesOf("PNDMScheduler");
    public static TheoryData<string> Ddim => SchedulerGolden.NamesOf("DDIMScheduler");
    public static TheoryData<string> Euler => SchedulerGolden.NamesOf("EulerDiscreteScheduler");
    public static TheoryData<string> EulerAncestral => SchedulerGolden.NamesOf("EulerAncestralDiscreteScheduler");

    [Theory, MemberData(nameof(Lms))]
    public void LMSDiscreteScheduler_matches(string golden) => SchedulerGolden.Run(golden, output);

    [Theory, MemberData(nameof(Pndm))]
    public void PNDMScheduler_matches(string golden) => SchedulerGolden.Run(golden, output);

    [Theory, MemberData(nameof(Ddim))]
    public void DDIMScheduler_matches(string golden) => SchedulerGolden.Run(golden, output);

    [Theory, MemberData(nameof(Euler))]
    public void EulerDiscreteScheduler_matches(string golden) => SchedulerGolden.Run(golden, output);

    [Theory, MemberData(nameof(EulerAncestral))]
    public void EulerAncestralDiscreteScheduler_matches(string golden) => SchedulerGolden.Run(golden, output);
}
