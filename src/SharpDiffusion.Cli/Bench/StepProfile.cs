using System.Globalization;
using SharpDiffusion.Diagnostics;

namespace SharpDiffusion.Cli.Bench;

/// <summary>
/// One denoising step by op class (issue 24): the FLOPs <see cref="FlopCounter"/> counted for convolutions, linear layers
/// and the attention products, and the seconds <see cref="OpClassTimer"/> measured for each, so each class's rate can be
/// set beside its own roofline: convolutions against the best 3×3 conv, linears and attention (both GEMMs) against the
/// default matmul path, the one nn.Linear takes. Norms and elementwise ops (the rest) have no FLOP roofline: their share
/// of the step is what they cost.
/// </summary>
public sealed record StepProfile(long ConvFlops, long LinearFlops, long AttentionFlops, OpClassTimes Times)
{
    public long TotalFlops => ConvFlops + LinearFlops + AttentionFlops;

    public static StepProfile From(FlopCounter counter, OpClassTimes times) => new(counter.Conv, counter.Linear, counter.Attention, times);

    /// <summary>"conv 0.89 + linear 0.47 + attention 0.25 TFLOP".</summary>
    public string FlopSplit => string.Create(CultureInfo.InvariantCulture,
        $"conv {ConvFlops / 1e12:F2} + linear {LinearFlops / 1e12:F2} + attention {AttentionFlops / 1e12:F2} TFLOP");

    /// <summary>One line per op class: seconds per step, share of the step, GFLOP/s and the fraction of its roofline.</summary>
    public IEnumerable<string> Lines(Roofline.Rates? roofline)
    {
        var inv = CultureInfo.InvariantCulture;
        var t = Times;
        string Line(string name, double seconds, long flops, double? best, string against)
        {
            string rate = flops == 0 || seconds <= 0 ? "" : string.Create(inv, $", {flops / seconds / 1e9:F0} GFLOP/s");
            string of = best is { } b && b > 0 && flops > 0 && seconds > 0 ? string.Create(inv, $" = {flops / seconds / 1e9 / b:P0} of the {against} roofline ({b:F0})") : "";
            return string.Create(inv, $"{name,-10} {seconds,8:F2} s {seconds / t.Step,5:P0}{rate}{of}");
        }
        yield return Line("conv", t.Conv, ConvFlops, roofline?.Conv, "conv");
        yield return Line("linear", t.Linear, LinearFlops, roofline?.Matmul, "matmul");
        yield return Line("attention", t.Attention, AttentionFlops, roofline?.Matmul, "matmul");
        yield return Line("rest", t.Rest, 0, null, "");
    }
}
