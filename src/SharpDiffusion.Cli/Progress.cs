using SharpDiffusion.Pipelines;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace SharpDiffusion.Cli;

/// <summary>A live progress bar (steps, it/s, elapsed, ETA) fitted to the terminal's width; without a terminal, plain
/// lines at most about once a second or every 5% of the steps, so long runs do not flood a log.</summary>
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
            return work(new SynchronousProgress<GenerationProgress>(new LogLines().Report));

        T result = default!;
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(ColumnsFor(AnsiConsole.Profile.Width))
            .Start(ctx =>
            {
                var task = ctx.AddTask("Denoising", maxValue: steps);
                result = work(new SynchronousProgress<GenerationProgress>(p =>
                {
                    switch (p.Stage)
                    {
                        case GenerationStage.Encoding: task.Description = "Encoding"; break;
                        case GenerationStage.Denoising: task.Description = "Denoising"; task.MaxValue = p.TotalSteps; task.Value = p.Step; break;
                        case GenerationStage.Decoding: task.Description = "Decoding"; break;
                        default: task.Description = "Done"; task.StopTask(); break;
                    }
                }));
            });
        return result;
    }

    /// <summary>What fits on one line: everything from 100 columns, no bar details below 70, steps and ETA below 50.</summary>
    public static ProgressColumn[] ColumnsFor(int width) => width switch
    {
        >= 100 => [new TaskDescriptionColumn(), new ProgressBarColumn { Width = 30 }, new PercentageColumn(), new StepsColumn(),
            new IterationsPerSecondColumn(), new LabelledTimeColumn("elapsed", t => t.ElapsedTime), new LabelledTimeColumn("ETA", t => t.RemainingTime)],
        >= 70 => [new TaskDescriptionColumn(), new ProgressBarColumn { Width = 20 }, new StepsColumn(), new LabelledTimeColumn("ETA", t => t.RemainingTime)],
        >= 50 => [new TaskDescriptionColumn(), new ProgressBarColumn { Width = 10 }, new StepsColumn(), new LabelledTimeColumn("ETA", t => t.RemainingTime)],
        _ => [new StepsColumn(), new LabelledTimeColumn("ETA", t => t.RemainingTime)],
    };

    /// <summary>Plain progress lines for logs: stage changes always, steps at most once a second or every 5%.</summary>
    public sealed class LogLines(Action<string>? write = null, Func<DateTime>? clock = null)
    {
        readonly Action<string> _write = write ?? Console.WriteLine;
        readonly Func<DateTime> _now = clock ?? (() => DateTime.UtcNow);
        DateTime _last = DateTime.MinValue;
        int _lastTwentieth = -1;

        public void Report(GenerationProgress p)
        {
            if (p.Stage != GenerationStage.Denoising)
            {
                _write(p.Stage switch
                {
                    GenerationStage.Encoding => "Encoding prompt",
                    GenerationStage.Decoding => "Decoding latents",
                    _ => $"Done in {p.Elapsed.TotalSeconds:F1}s",
                });
                return;
            }
            int twentieth = p.Step * 20 / Math.Max(p.TotalSteps, 1);
            var now = _now();
            if (p.Step != p.TotalSteps && p.Step != 1 && twentieth == _lastTwentieth && now - _last < TimeSpan.FromSeconds(1))
                return;
            (_last, _lastTwentieth) = (now, twentieth);
            double rate = p.Step / Math.Max(p.Elapsed.TotalSeconds, 1e-9);
            double eta = (p.TotalSteps - p.Step) / Math.Max(rate, 1e-9);
            _write($"step {p.Step}/{p.TotalSteps}  {rate:F2} it/s  elapsed {p.Elapsed.TotalSeconds:F1}s  ETA {eta:F1}s");
        }
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

    sealed class LabelledTimeColumn(string label, Func<ProgressTask, TimeSpan?> time) : ProgressColumn
    {
        public override IRenderable Render(RenderOptions options, ProgressTask task, TimeSpan deltaTime) =>
            new Spectre.Console.Text(time(task) is TimeSpan t ? $"{label} {(int)t.TotalMinutes:00}:{t.Seconds:00}" : $"{label} --:--");
    }
}
