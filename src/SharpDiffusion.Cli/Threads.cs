namespace SharpDiffusion.Cli;

/// <summary>The --threads value: at least 1; more than the machine's cores only makes libtorch's threads wait for each
/// other (a 40× slowdown was seen with 1000), so it is capped there with a warning.</summary>
public static class Threads
{
    public static int Check(int threads, TextWriter? warnings = null)
    {
        if (threads < 1)
            throw new UsageException($"--threads must be at least 1; got {threads}.");
        int cores = Environment.ProcessorCount;
        if (threads <= cores)
            return threads;
        (warnings ?? Console.Out).WriteLine($"warning: --threads {threads} is more than the {cores} cores; using {cores}.");
        return cores;
    }
}
