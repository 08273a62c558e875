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
    public static TheoryData<string> DpmSolver => SchedulerGolden.NamesOf("DPMSolverMultistepScheduler");
    public static TheoryData<string> Ddpm => SchedulerGolden.NamesOf("DDPMScheduler");
    public static TheoryData<string> Heun => SchedulerGolden.NamesOf("HeunDiscreteScheduler");
    public static TheoryData<string> Kdpm2 => SchedulerGolden.NamesOf("KDPM2DiscreteScheduler");
    public static TheoryData<string> UniPC => SchedulerGolden.NamesOf("UniPCMultistepScheduler");

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

    [Theory, MemberData(nameof(DpmSolver))]
    public void DPMSolverMultistepScheduler_matches(string golden) => SchedulerGolden.Run(golden, output);

    [Theory, MemberData(nameof(Ddpm))]
    public void DDPMScheduler_matches(string golden) => SchedulerGolden.Run(golden, output);

    [Theory, MemberData(nameof(Heun))]
    public void HeunDiscreteScheduler_matches(string golden) => SchedulerGolden.Run(golden, output);

    [Theory, MemberData(nameof(Kdpm2))]
    public void KDPM2DiscreteScheduler_matches(string golden) => SchedulerGolden.Run(golden, output);

    [Theory, MemberData(nameof(UniPC))]
    public void UniPCMultistepScheduler_matches(string golden) => SchedulerGolden.Run(golden, output);
}
