using SharpDiffusion.Schedulers;

namespace SharpDiffusion.Tests.Schedulers;

/// <summary>LMS coefficients are integrals of Lagrange basis polynomials; we integrate them exactly where
/// diffusers calls scipy quad (rtol 1e-4). The golden trajectories bound the end effect (see
/// SchedulerGoldenTests); these check the integral itself.</summary>
public class LmsCoefficientTests
{
    static LMSDiscreteScheduler Scheduler(int steps)
    {
        var s = new LMSDiscreteScheduler(SchedulerGolden.Sd14Config());
        s.SetTimesteps(steps);
        return s;
    }

    [Theory]
    [InlineData(7)]
    [InlineData(20)]
    [InlineData(50)]
    public void Basis_integrals_sum_to_the_interval_length(int steps)
    {
        // Σ_k ℓ_k ≡ 1, so Σ_k ∫ ℓ_k = σ_{i+1} - σ_i.
        var s = Scheduler(steps);
        for (int i = 0; i < steps; i++)
        {
            int order = Math.Min(i + 1, LMSDiscreteScheduler.LmsOrder);
            double sum = Enumerable.Range(0, order).Sum(k => s.LmsCoefficient(order, i, k));
            double length = (double)s.Sigmas![i + 1] - s.Sigmas[i];
            Assert.True(Math.Abs(sum - length) <= 1e-12 * Math.Abs(length), $"step {i}: {sum} vs {length}");
        }
    }

    [Theory]
    [InlineData(7)]
    [InlineData(20)]
    public void Coefficients_equal_Gauss_Legendre_quadrature_of_the_product_formula(int steps)
    {
        // 3-point Gauss-Legendre is exact for the cubic basis polynomials of order-4 LMS, and evaluates
        // ℓ_k as diffusers' integrand does (product of ratios) rather than by expansion.
        double[] nodes = [-Math.Sqrt(0.6), 0, Math.Sqrt(0.6)];
        double[] weights = [5.0 / 9, 8.0 / 9, 5.0 / 9];
        var s = Scheduler(steps);
        var sig = s.Sigmas!;
        for (int i = 0; i < steps; i++)
        {
            int order = Math.Min(i + 1, LMSDiscreteScheduler.LmsOrder);
            for (int k = 0; k < order; k++)
            {
                double a = sig[i], b = sig[i + 1], quad = 0;
                for (int q = 0; q < 3; q++)
                {
                    double tau = (a + b) / 2 + (b - a) / 2 * nodes[q], basis = 1;
                    for (int m = 0; m < order; m++)
                        if (m != k)
                            basis *= (tau - sig[i - m]) / ((double)sig[i - k] - sig[i - m]);
                    quad += weights[q] * basis * (b - a) / 2;
                }
                double exact = s.LmsCoefficient(order, i, k);
                Assert.True(Math.Abs(exact - quad) <= 1e-10 * Math.Max(1, Math.Abs(quad)), $"step {i}, k {k}: {exact} vs {quad}");
            }
        }
    }
}
