namespace SharpDiffusion.Schedulers;

/// <summary>
/// Inference timesteps from <c>timestep_spacing</c> (Table 2 of arXiv 2305.08891), computed with numpy's
/// float64 semantics as diffusers does (<c>np.linspace</c>, <c>np.arange</c>, <c>round</c> = half to even).
/// All results are in descending order (the order they are sampled in).
/// </summary>
public static class TimestepSpacing
{
    public const string Linspace = "linspace";
    public const string Leading = "leading";
    public const string Trailing = "trailing";

    /// <summary>The common schedule with <paramref name="n"/> entries:
    /// linspace = linspace(0, T-1, n) (rounded to integers when <paramref name="roundLinspace"/>, otherwise the
    /// fractional values LMS/Euler/Heun/KDPM2 keep); leading = (T/n)·i + steps_offset with integer T/n;
    /// trailing = round(T - i·T/n) - 1.</summary>
    public static double[] Descending(string spacing, int numTrainTimesteps, int n, int stepsOffset, bool roundLinspace)
    {
        double[] t = spacing switch
        {
            Linspace => NumPy.Linspace(0, numTrainTimesteps - 1, n).Select(x => roundLinspace ? Math.Round(x) : x).Reverse().ToArray(),
            Leading => Enumerable.Range(0, n).Select(i => (double)(i * (numTrainTimesteps / n) + stepsOffset)).Reverse().ToArray(),
            Trailing => TrailingDescending(numTrainTimesteps, numTrainTimesteps, n),
            _ => throw Unsupported(spacing),
        };
        return t;
    }

    /// <summary>DPM-Solver / UniPC variant: linspace and leading divide [0, T) into n+1 and drop the final 0
    /// (linspace(0, T-1, n+1) rounded, or (T//(n+1))·i + steps_offset for i = n … 1); trailing as usual.</summary>
    public static double[] MultistepDescending(string spacing, int numTrainTimesteps, int n, int stepsOffset, int lastTimestep)
    {
        return spacing switch
        {
            Linspace => NumPy.Linspace(0, lastTimestep - 1, n + 1).Select(x => Math.Round(x)).Reverse().Take(n).ToArray(),
            Leading => Enumerable.Range(1, n).Select(i => (double)(i * (lastTimestep / (n + 1)) + stepsOffset)).Reverse().ToArray(),
            Trailing => TrailingDescending(lastTimestep, numTrainTimesteps, n),
            _ => throw Unsupported(spacing),
        };
    }

    /// <summary>The consistency-distilled schedules (LCM, TCD): the distillation's own <paramref name="originalSteps"/>
    /// timesteps k·i - 1 (k = T // originalSteps, i = 1 … originalSteps), descending, of which the entries at
    /// floor(j·originalSteps/n), j = 0 … n-1, are taken (np.linspace(0, len, n, endpoint=False)).</summary>
    public static double[] ConsistencyDescending(int numTrainTimesteps, int originalSteps, int n, string scheduler)
    {
        if (originalSteps < 1 || originalSteps > numTrainTimesteps)
            throw new ArgumentOutOfRangeException(nameof(originalSteps),
                $"{scheduler}: original_inference_steps must be between 1 and num_train_timesteps ({numTrainTimesteps}), got {originalSteps}.");
        if (n > originalSteps)
            throw new ArgumentOutOfRangeException(nameof(n),
                $"{scheduler}: {n} steps exceed original_inference_steps ({originalSteps}), the schedule they are taken from; use at most {originalSteps}.");
        int k = numTrainTimesteps / originalSteps;
        double step = originalSteps / (double)n;
        return [.. Enumerable.Range(0, n).Select(j => (double)((originalSteps - (long)Math.Floor(j * step)) * k - 1))];
    }

    /// <summary>round(arange(start, 0, -T/n)) - 1, n of them: when T/n is inexact, arange's length
    /// ceil(-start/(-T/n)) can come out as n+1 with a last value near 0, i.e. timestep -1 (numpy and diffusers too).</summary>
    static double[] TrailingDescending(int start, int numTrainTimesteps, int n) =>
        NumPy.Arange(start, 0, -(double)numTrainTimesteps / n).Take(n).Select(x => Math.Round(x) - 1).ToArray();

    static ArgumentException Unsupported(string spacing) =>
        new($"timestep_spacing '{spacing}' is not supported; choose one of 'linspace', 'leading' or 'trailing'");
}

/// <summary>The few numpy float64 routines the schedules are defined with, reproduced operation for operation.</summary>
public static class NumPy
{
    /// <summary><c>np.linspace(start, stop, num)</c>: start + i·((stop-start)/(num-1)), last element exactly stop.</summary>
    public static double[] Linspace(double start, double stop, int num)
    {
        var y = new double[num];
        if (num == 0)
            return y;
        double delta = stop - start;
        int div = num - 1;
        double step = div > 0 ? delta / div : double.NaN;
        for (int i = 0; i < num; i++)
            y[i] = div > 0 ? (step == 0 ? i / (double)div * delta : i * step) + start : i * delta + start;
        if (num > 1)
            y[^1] = stop;
        return y;
    }

    /// <summary><c>np.arange(start, stop, step)</c> for doubles: length ceil((stop-start)/step), values
    /// start + i·((start+step)-start) (numpy fills with the delta of the first two elements).</summary>
    public static double[] Arange(double start, double stop, double step)
    {
        long length = (long)Math.Ceiling((stop - start) / step);
        if (length <= 0)
            return [];
        var y = new double[length];
        double delta = (start + step) - start;
        for (long i = 0; i < length; i++)
            y[i] = i == 0 ? start : start + i * delta;
        return y;
    }

    /// <summary><c>np.interp(x, xp, fp)</c> for increasing <paramref name="xp"/>: piecewise linear, clamped at both ends.</summary>
    public static double Interp(double x, IReadOnlyList<double> xp, IReadOnlyList<double> fp)
    {
        if (double.IsNaN(x))
            return x;
        if (x <= xp[0])
            return fp[0];
        if (x >= xp[^1])
            return fp[^1];
        int j = 0;
        while (xp[j + 1] <= x)
            j++;
        double slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
        return slope * (x - xp[j]) + fp[j];
    }

    /// <summary><c>np.interp(x, arange(len(fp)), fp)</c>: piecewise linear, clamped at both ends.</summary>
    public static double Interp(double x, IReadOnlyList<float> fp)
    {
        int last = fp.Count - 1;
        if (double.IsNaN(x))
            return x;
        if (x <= 0)
            return fp[0];
        if (x >= last)
            return fp[last];
        int j = (int)Math.Floor(x);
        if (x == j)
            return fp[j];
        double slope = ((double)fp[j + 1] - fp[j]) / 1.0;
        return slope * (x - j) + fp[j];
    }
}
