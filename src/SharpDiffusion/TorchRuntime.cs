using static TorchSharp.torch;

namespace SharpDiffusion;

/// <summary>Process-wide libtorch settings.</summary>
public static class TorchRuntime
{
    /// <summary>Uses <paramref name="threads"/> intra-op threads (default: every core).</summary>
    public static void Initialize(int? threads = null)
    {
        set_num_threads(threads ?? Environment.ProcessorCount);
    }
}
