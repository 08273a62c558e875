namespace SharpDiffusion.Tuning;

/// <summary>
/// The rule a fast-path choice between two candidates follows (issue 24). A representative micro-benchmark decides only
/// when it is clear: one candidate faster by more than <see cref="MicroBenchmarks.Margin"/>, twice in a row (noise on a
/// shared 2-core machine reaches a few percent, rarely the same way twice). Otherwise the roofline kernel's timing decides
/// (the bare kernel most of the work runs in), and when that ties too, the default. The layout
/// (<see cref="LayoutDecision"/>) and the linear kernel (<see cref="LinearDecision"/>) are chosen this way.
/// </summary>
public static class PairDecision
{
    /// <summary>The two candidates: the value each is stored as, the name it is printed with, and which is the default.</summary>
    public sealed record Candidates(string ValueA, string NameA, string ValueB, string NameB, bool DefaultIsB);

    /// <summary>Seconds per call of the same work with each candidate, and what that work is ("ResNet block").</summary>
    public sealed record Timed(string What, double A, double B);

    /// <summary>True: B is clearly faster; false: A is; null: within the margin (a tie).</summary>
    public static bool? BFaster(double a, double b, double margin = MicroBenchmarks.Margin) =>
        b < a * (1 - margin) ? true : a < b * (1 - margin) ? false : null;

    /// <summary>The choice with its basis (<see cref="LayoutDecision.Measured"/>, <see cref="LayoutDecision.Roofline"/>,
    /// <see cref="LayoutDecision.Default"/>) and the timings behind it. Each timing runs only when the one before could not decide.</summary>
    public static CachedChoice Decide(Candidates c, Func<Timed> representative, Func<Timed> roofline)
    {
        string Pair(Timed t) => $"{t.What} {c.NameA} {MicroBenchmarks.Ms(t.A)}, {c.NameB} {MicroBenchmarks.Ms(t.B)}";
        string Value(bool b) => b ? c.ValueB : c.ValueA;

        var first = representative();
        string detail = Pair(first);
        if (BFaster(first.A, first.B) is bool clear)
        {
            var again = representative();
            detail += $", again {MicroBenchmarks.Ms(again.A)} and {MicroBenchmarks.Ms(again.B)}";
            if (BFaster(again.A, again.B) == clear) return new(Value(clear), detail, LayoutDecision.Measured);
            detail += " (not repeated)";
        }
        else detail += $" (within {MicroBenchmarks.Margin:P0})";

        var kernel = roofline();
        detail += "; " + Pair(kernel);
        if (BFaster(kernel.A, kernel.B) is bool faster) return new(Value(faster), detail, LayoutDecision.Roofline);
        return new(Value(c.DefaultIsB), detail + $" (within {MicroBenchmarks.Margin:P0})", LayoutDecision.Default);
    }
}
