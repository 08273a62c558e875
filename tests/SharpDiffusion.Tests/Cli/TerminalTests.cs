using SharpDiffusion.Cli;
using SharpDiffusion.Pipelines;

namespace SharpDiffusion.Tests.Cli;

/// <summary>What the CLI prints while it works: bounded log lines, a bar that fits the terminal, thread counts.</summary>
public class TerminalTests
{
    [Fact]
    public void Without_a_terminal_1000_steps_print_at_most_a_line_every_5_percent_or_second()
    {
        var lines = new List<string>();
        var now = new DateTime(2026, 1, 1);
        var log = new Progress.LogLines(lines.Add, () => now);
        log.Report(new GenerationProgress(GenerationStage.Encoding, 0, 1000, TimeSpan.Zero));
        for (int step = 1; step <= 1000; step++)
        {
            now += TimeSpan.FromMilliseconds(10); // 100 steps a second
            log.Report(new GenerationProgress(GenerationStage.Denoising, step, 1000, TimeSpan.FromMilliseconds(10 * step)));
        }
        log.Report(new GenerationProgress(GenerationStage.Decoding, 1000, 1000, TimeSpan.FromSeconds(10)));
        int stepLines = lines.Count(l => l.StartsWith("step "));
        Assert.InRange(stepLines, 15, 25);
        Assert.StartsWith("step 1/1000", lines[1]);
        Assert.StartsWith("step 1000/1000", lines[^2]);
        Assert.Equal("Decoding latents", lines[^1]);
    }

    [Fact]
    public void Slow_steps_are_each_printed()
    {
        var lines = new List<string>();
        var now = new DateTime(2026, 1, 1);
        var log = new Progress.LogLines(lines.Add, () => now);
        for (int step = 1; step <= 10; step++)
        {
            now += TimeSpan.FromSeconds(2);
            log.Report(new GenerationProgress(GenerationStage.Denoising, step, 1000, TimeSpan.FromSeconds(2 * step)));
        }
        Assert.Equal(10, lines.Count);
    }

    [Fact]
    public void Threads_beyond_the_cores_are_capped_with_a_warning()
    {
        var warnings = new StringWriter();
        Assert.Equal(Environment.ProcessorCount, Threads.Check(1000, warnings));
        Assert.Contains($"--threads 1000 is more than the {Environment.ProcessorCount} cores", warnings.ToString());
        Assert.Equal(1, Threads.Check(1, warnings));
        Assert.Throws<UsageException>(() => Threads.Check(0));
    }
}
