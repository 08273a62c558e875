using System.Runtime.CompilerServices;
using SharpDiffusion.Tuning;

namespace SharpDiffusion.Tests.Tuning;

/// <summary>
/// Tests run with fast-path tuning off unless the caller set SHARPDIFFUSION_TUNING: every test then loads models in
/// the default layout and kernel whatever the machine measures, and nothing writes to the user's cache folder.
/// (SHARPDIFFUSION_LAYOUT=nchw runs the whole suite in the other layout.)
/// </summary>
static class TuningOff
{
    [ModuleInitializer]
    internal static void Apply()
    {
        if (Environment.GetEnvironmentVariable(FastPaths.TuningVariable) is null)
            Environment.SetEnvironmentVariable(FastPaths.TuningVariable, "off");
    }
}
