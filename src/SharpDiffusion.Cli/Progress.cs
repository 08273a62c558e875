using SharpDiffusion.Pipelines;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace SharpDiffusion.Cli;

/// <summary>A live progress bar (steps, it/s, ETA) on a terminal; plain lines when output is redirected.</summary>
public static class Progress
{
    static bool Interactive => !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;

    public static void Line(string text)
    {
        if (Interactive) AnsiConsole.MarkupLine(Markup.Escape(text));
        else Console.WriteLine(text);
    }

    public static T Status<T>(string what, Func<T> work)
    {
        if (!Interactive)
        {
            Console.WriteLine($"{what}...");
            return work();
        }
        return AnsiConsole.Status().Start(what + "...", _ => work());
    }

    /// <summary>Runs <paramref name="work"/>, showing the pipeline's progress reports.</summary>
    public static T Run<T>(int steps, Func<IProgress<GenerationProgress>, T> work)
    {
        if (!Interactive)
        {
            return work(new SynchronousProgress<GenerationProgress>(p =>
            {
                if (p.Stage != GenerationStage.Denoising)
                {
                    Console.WriteLine(p.Stage switch
                    {
                        GenerationStage.Encoding => "Encoding prompt",
                        GenerationStage.Decoding => "Decoding latents",
                        _ => $"Done in {p.Elapsed.TotalSeconds:F1}s",
                    });
                    return;
                }
                double rate = p.Step / Math.Max(p.Elapsed.TotalSeconds, 1e-9);
                double eta = (p.TotalSteps - p.Step) / Math.Max(rate, 1e-9);
                Console.WriteLine($"step {p.Step}/{p.TotalSteps}  {rate:F2} it/s  elapsed {p.Elapsed.TotalSeconds:F1}s  ETA {eta:F1}s");
            }));
        }

        T result = default!;
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new StepsColumn(),
                new IterationsPerSecondColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask("Denoising", maxValue: steps);
                result = work(new SynchronousProgress<GenerationProgress>(p =>
                {
                    switch (p.Stage)
                    {
                        case GenerationStage.Encoding: task.Description = "Encoding prompt"; break;
                        case GenerationStage.Denoising: task.Description = "Denoising"; task.MaxValue = p.TotalSteps; task.Value = p.Step; break;
                        case GenerationStage.Decoding: task.Description = "Decoding"; break;
                        default: task.Description = "Done"; task.StopTask(); break;
                    }
                }));
            });
        return result;
    }

    sealed class StepsColumn : ProgressColumn
    {
        public override IRenderable Render(RenderOptions options, ProgressTask task, TimeSpan deltaTime) =>
            new Spectre.Console.Text($"{(int)task.Value}/{(int)task.MaxValue}");
    }

    sealed class IterationsPerSecondColumn : ProgressColumn
    {
        public override IRenderable Render(RenderOptions options, ProgressTask task, TimeSpan deltaTime) =>
            new Spectre.Console.Text(task.Speed is double s ? $"{s:F2} it/s" : "-- it/s");
    }
}
