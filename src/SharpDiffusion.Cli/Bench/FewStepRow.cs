using System.Globalization;

namespace SharpDiffusion.Cli.Bench;

/// <summary>
/// One recipe's whole image as `bench --fewstep` measured it: the seconds from the prompt to the first UNet call (text
/// encoding and setup), of the denoising loop and from its end to the pixels (decode), the UNet calls the hooks saw, and
/// the FLOPs <see cref="Diagnostics.FlopCounter"/> counted in the UNet and in the rest (text encoders and decoder).
/// </summary>
/// <param name="TimedSteps">The steps that ran: <paramref name="Steps"/> when measured whole, fewer when <see cref="ExtrapolatedTo"/> made the row.</param>
public sealed record FewStepRow(string Recipe, int Steps, int TimedSteps, bool Cfg, string Decoder, int FullCalls, int ShallowCalls,
    double TextSeconds, double DenoiseSeconds, double DecodeSeconds, long UNetFlops, long OtherFlops)
{
    public bool Extrapolated => TimedSteps < Steps;
    public double TotalSeconds => TextSeconds + DenoiseSeconds + DecodeSeconds;
    public long Flops => UNetFlops + OtherFlops;

    /// <summary>Every FLOP at the run's matmul rate: a yardstick for the recipe, not a bound (oneDNN's channels-last convs can run faster).</summary>
    public double SecondsAtMatmulRate(Roofline.Rates rates) => Flops / (rates.Matmul * 1e9);

    /// <summary>This measured row (all its steps ran) extrapolated to <paramref name="steps"/>: the denoising's seconds, UNet
    /// calls and UNet FLOPs × steps / <see cref="Steps"/> (without DeepCache every step is the same UNet call and the
    /// scheduler's own work is negligible); the text encoding and decode do not depend on the steps and stay as measured.</summary>
    public FewStepRow ExtrapolatedTo(int steps)
    {
        if (Extrapolated) throw new InvalidOperationException($"{Recipe}: already extrapolated from {TimedSteps} steps.");
        if (steps == Steps) return this;
        if (ShallowCalls > 0)
            throw new InvalidOperationException($"{Recipe}: a DeepCache recipe's steps differ in cost; time all {steps} steps instead of {Steps}.");
        if (FullCalls % Steps != 0 || FullCalls == 0 || UNetFlops % FullCalls != 0)
            throw new InvalidOperationException($"{Recipe}: {FullCalls} UNet calls of {UNetFlops} FLOPs in {Steps} steps are not the same calls every step.");
        int calls = FullCalls / Steps * steps;
        return this with
        {
            Steps = steps, TimedSteps = Steps, FullCalls = calls,
            DenoiseSeconds = DenoiseSeconds / Steps * steps, UNetFlops = UNetFlops / FullCalls * calls,
        };
    }

    /// <summary>The measured seconds of the steps that ran (the extrapolated row's source).</summary>
    public double TimedDenoiseSeconds => DenoiseSeconds / Steps * TimedSteps;

    /// <summary>The Markdown table and its notes; <paramref name="rates"/> null (--skip-roofline): no bound column.</summary>
    public static List<string> Table(IReadOnlyList<FewStepRow> rows, Roofline.Rates? rates, int width, int height, string dtype)
    {
        var inv = CultureInfo.InvariantCulture;
        var table = new MarkdownTable(MarkdownTable.Label("recipe"), MarkdownTable.Number("steps"), MarkdownTable.Label("CFG batch"),
            MarkdownTable.Number("UNet calls (full/shallow)"), MarkdownTable.Label("decoder"), MarkdownTable.Number("text s"),
            MarkdownTable.Number("denoise s"), MarkdownTable.Number("decode s"), MarkdownTable.Number("whole image s"),
            MarkdownTable.Number("TFLOP"), MarkdownTable.Number("at matmul rate s"));
        foreach (var r in rows)
        {
            string whole = string.Create(inv, $"{r.TotalSeconds:F1}") + (r.Extrapolated ? " extrapolated" : "");
            string bound = rates is { Matmul: > 0 } ? string.Create(inv, $"{r.SecondsAtMatmulRate(rates):F1}") : "–";
            table.Add($"{r.Recipe}", $"{r.Steps}", $"{(r.Cfg ? "yes" : "no")}", $"{r.FullCalls}/{r.ShallowCalls}", $"{r.Decoder}",
                $"{r.TextSeconds:F1}", $"{r.DenoiseSeconds:F1}", $"{r.DecodeSeconds:F1}", $"{whole}", $"{r.Flops / 1e12:F2}", $"{bound}");
        }
        var lines = new List<string> { $"Whole images at {width}x{height}, {dtype} (weights resident; prompt to pixels):" };
        lines.AddRange(table.Lines());
        foreach (var r in rows.Where(r => r.Extrapolated))
            lines.Add(string.Create(inv, $"extrapolated: {r.Recipe} timed {r.TimedSteps} of its {r.Steps} steps ({r.TimedDenoiseSeconds:F1} s); " +
                $"its denoising, UNet calls and FLOPs are those x {r.Steps}/{r.TimedSteps}, the text encoding and decode as measured."));
        lines.Add("UNet calls: full passes / DeepCache's shallow ones, as hooks on the UNet counted them (a CFG call is one batch-2 pass).");
        if (rates is { Matmul: > 0 })
            lines.Add(string.Create(inv, $"at matmul rate: the image's FLOPs (convs, linears, attention products) / this run's matmul roofline " +
                $"({rates.Matmul:F0} GFLOP/s), a yardstick rather than a bound: oneDNN's channels-last convs can run faster than sgemm."));
        if (rows.Count > 1)
            foreach (var r in rows.Skip(1))
            {
                double speedup = rows[0].TotalSeconds / r.TotalSeconds;
                string how = speedup >= 1 ? string.Create(inv, $"x{speedup:F1} faster") : string.Create(inv, $"x{1 / speedup:F1} slower");
                lines.Add(string.Create(inv, $"{r.Recipe}: {1 / speedup:P0} of the {rows[0].Recipe} image's time ({how})."));
            }
        return lines;
    }
}
