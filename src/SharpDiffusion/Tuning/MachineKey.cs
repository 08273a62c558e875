using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace SharpDiffusion.Tuning;

/// <summary>
/// What a measured fast path depends on: the CPU model, the libtorch and TorchSharp builds (their kernels), and the
/// intra-op thread count. A cached choice is used only under the same key.
/// </summary>
public sealed record MachineKey(string Cpu, string Torch, int Threads)
{
    static readonly Lazy<string> CurrentCpu = new(CpuName);
    static readonly Lazy<string> CurrentTorch = new(() => $"libtorch {__version__}, TorchSharp {typeof(TorchSharp.torch).Assembly.GetName().Version}");

    /// <summary>This process's key; the thread count as libtorch has it now.</summary>
    public static MachineKey Current() => new(CurrentCpu.Value, CurrentTorch.Value, get_num_threads());

    public override string ToString() => $"{Cpu}, {Torch}, {Threads} threads";

    /// <summary>The CPU's model name (Linux: /proc/cpuinfo; elsewhere the architecture and core count).</summary>
    public static string CpuName()
    {
        try
        {
            if (File.Exists("/proc/cpuinfo"))
                foreach (var line in File.ReadLines("/proc/cpuinfo"))
                    if (line.StartsWith("model name", StringComparison.Ordinal) && line.Split(':', 2) is [_, var name])
                        return name.Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        return Environment.GetEnvironmentVariable("PROCESSOR_IDENTIFIER")
            ?? $"{RuntimeInformation.ProcessArchitecture} CPU, {Environment.ProcessorCount} cores";
    }
}
