namespace SharpDiffusion.Schedulers;

/// <summary>
/// The quantile function (ppf) of the Beta(a, b) distribution, in double precision as scipy.stats.beta.ppf gives it:
/// the x with I_x(a, b) = p, where I is the regularized incomplete beta function. Used by beta σ spacing
/// ("Beta Sampling is All You Need", arXiv 2407.12173).
/// </summary>
public static class BetaDistribution
{
    /// <summary>x in [0, 1] with I_x(a, b) = <paramref name="p"/>: Newton's method on I, kept inside a bisection
    /// bracket, to the last bit.</summary>
    public static double Ppf(double p, double a, double b)
    {
        if (!(a > 0 && b > 0) || double.IsNaN(p) || p < 0 || p > 1)
            throw new ArgumentOutOfRangeException(nameof(p), $"Beta ppf: needs 0 <= p <= 1 and a, b > 0; got p={p}, a={a}, b={b}.");
        if (p == 0 || p == 1)
            return p;
        double lnBeta = LogGamma(a) + LogGamma(b) - LogGamma(a + b);
        double lo = 0, hi = 1, x = 0.5;
        for (int iteration = 0; iteration < 200; iteration++)
        {
            double f = RegularizedIncompleteBeta(x, a, b, lnBeta) - p;
            if (f == 0)
                return x;
            if (f < 0) lo = x; else hi = x;
            // The density, I's derivative: x^(a-1)(1-x)^(b-1)/B(a, b).
            double density = Math.Exp((a - 1) * Math.Log(x) + (b - 1) * Math.Log(1 - x) - lnBeta);
            double next = x - f / density;
            if (!(next > lo && next < hi))
                next = 0.5 * (lo + hi);
            if (next == x || hi - lo <= 2 * double.Epsilon)
                return next;
            x = next;
        }
        return x;
    }

    /// <summary>I_x(a, b) by the continued fraction of Numerical Recipes §6.4 (modified Lentz), on the side of
    /// x = (a+1)/(a+b+2) where it converges fast, using I_x(a, b) = 1 - I_{1-x}(b, a) on the other.</summary>
    public static double RegularizedIncompleteBeta(double x, double a, double b) =>
        RegularizedIncompleteBeta(x, a, b, LogGamma(a) + LogGamma(b) - LogGamma(a + b));

    static double RegularizedIncompleteBeta(double x, double a, double b, double lnBeta)
    {
        if (x <= 0) return 0;
        if (x >= 1) return 1;
        double front = Math.Exp(a * Math.Log(x) + b * Math.Log(1 - x) - lnBeta);
        return x < (a + 1) / (a + b + 2)
            ? front * ContinuedFraction(x, a, b) / a
            : 1 - front * ContinuedFraction(1 - x, b, a) / b;
    }

    static double ContinuedFraction(double x, double a, double b)
    {
        const double tiny = 1e-300;
        double c = 1, d = 1 - (a + b) * x / (a + 1);
        d = 1 / (Math.Abs(d) < tiny ? tiny : d);
        double h = d;
        for (int m = 1; m <= 1000; m++)
        {
            // Even term d_{2m} = m(b-m)x/((a+2m-1)(a+2m)), odd term d_{2m+1} = -(a+m)(a+b+m)x/((a+2m)(a+2m+1)).
            double even = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m));
            d = 1 / Nonzero(1 + even * d);
            c = Nonzero(1 + even / c);
            h *= d * c;
            double odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1));
            d = 1 / Nonzero(1 + odd * d);
            c = Nonzero(1 + odd / c);
            double delta = d * c;
            h *= delta;
            if (Math.Abs(delta - 1) < 1e-16)
                break;
        }
        return h;

        static double Nonzero(double v) => Math.Abs(v) < tiny ? tiny : v;
    }

    /// <summary>ln Γ(x) for x &gt; 0: Lanczos' approximation (g = 7, 9 terms; relative error ~1e-15), with
    /// Γ(x) = Γ(x+1)/x below 0.5.</summary>
    public static double LogGamma(double x)
    {
        if (x < 0.5)
            return LogGamma(x + 1) - Math.Log(x);
        x -= 1;
        double sum = Lanczos[0];
        for (int i = 1; i < Lanczos.Length; i++)
            sum += Lanczos[i] / (x + i);
        double t = x + 7.5;
        return 0.5 * Math.Log(2 * Math.PI) + (x + 0.5) * Math.Log(t) - t + Math.Log(sum);
    }

    static readonly double[] Lanczos =
    [
        0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
        12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
    ];
}
