using Xunit.Abstractions;

namespace SharpDiffusion.Tests.Schedulers;

/// <summary>One test per golden/schedulers file, grouped by diffusers class.</summary>
public class SchedulerGoldenTests(ITestOutputHelper output)
{
    public static TheoryData<string> Lms => SchedulerGolden.NamesOf("LMSDiscreteScheduler");
    public static TheoryData<string> Pndm => SchedulerGolden.NamesOf("PNDMScheduler");

    [Theory, MemberData(nameof(Lms))]
    public void LMSDiscreteScheduler_matches(string golden) => SchedulerGolden.Run(golden, output);

    [Theory, MemberData(nameof(Pndm))]
    public void PNDMScheduler_matches(string golden) => SchedulerGolden.Run(golden, output);
}
