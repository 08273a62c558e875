using System.Runtime.CompilerServices;

namespace SharpDiffusion.Tests;

/// <summary>
/// The test process hosts servers (Kestrel) and their clients beside synchronous tests that hold pool threads for
/// seconds (a generation, a child process). With the default minimum (one thread per core: 2 here) the pool then adds
/// threads only about twice a second, and an in-process server answers late; timing-sensitive tests saw such stalls.
/// </summary>
static class ThreadPoolStart
{
    [ModuleInitializer]
    internal static void Apply()
    {
        ThreadPool.GetMinThreads(out int workers, out int io);
        ThreadPool.SetMinThreads(Math.Max(workers, 32), Math.Max(io, 32));
    }
}
