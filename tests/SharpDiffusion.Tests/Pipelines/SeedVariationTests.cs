using SharpDiffusion.Imaging;
using SharpDiffusion.Pipelines;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Pipelines;

/// <summary>
/// A1111's variation seeds and "resize seed from" (<see cref="SeedVariation"/>): strength 1 is the variation seed's
/// picture, a strength between is A1111's slerp (checked against a plain per-column computation in doubles), a resize-from
/// size pastes the noise that size draws, the infotext records them as A1111 writes them.
/// </summary>
public class SeedVariationTests
{
    static GenerationOptions Options(long seed) => new()
    {
        Prompts = ["a red circle"],
        NumInferenceSteps = 3,
        GuidanceScale = 5,
        Width = 64,
        Height = 64,
        Seed = seed,
    };

    [Fact]
    public void Strength_1_draws_the_variation_seeds_picture_and_strength_0_the_seeds()
    {
        var pipeline = PipelineParityTests.Pipeline("models/tiny-sd");
        using var seed5 = pipeline.Generate(Options(5));
        using var seed9 = pipeline.Generate(Options(9));
        using var full = pipeline.Generate(Options(5) with { VariationSeed = 9, VariationStrength = 1 });
        using var none = pipeline.Generate(Options(5) with { VariationSeed = 9, VariationStrength = 0 });
        using var half = pipeline.Generate(Options(5) with { VariationSeed = 9, VariationStrength = 0.5 });
        Golden.AssertClose(full.ImageFloat, seed9.ImageFloat, rel: 0, abs: 1e-6, what: "strength 1 against seed 9");
        Golden.AssertClose(none.ImageFloat, seed5.ImageFloat, rel: 0, abs: 0, what: "strength 0 against seed 5");
        Assert.True(Golden.MaxAbsDiff(half.ImageFloat, seed5.ImageFloat) > 1e-3, "strength 0.5 changes the picture");
        Assert.Equal(9, full.VariationSeed);
        Assert.Null(none.VariationSeed);
    }

    [Theory]
    [InlineData(0.3)]
    [InlineData(0.85)]
    public void A_strength_between_is_A1111s_slerp_along_the_height_of_each_image(double strength)
    {
        long[] shape = [2, 4, 6, 5];
        using var generator = new Generator(3);
        using var noise = randn(shape, generator: generator);
        using var sub = randn(shape, generator: new Generator(11));
        using var varied = new SeedVariation(3, 11, strength).Apply(noise, 8);

        // A1111: per image [C, H, W], normalise over H, one angle per (channel, column).
        var a = noise.data<float>().ToArray();
        var b = sub.data<float>().ToArray();
        var expected = new float[a.Length];
        long C = shape[1], H = shape[2], W = shape[3];
        for (long n = 0; n < shape[0]; n++)
            for (long c = 0; c < C; c++)
                for (long x = 0; x < W; x++)
                {
                    long At(long y) => ((n * C + c) * H + y) * W + x;
                    double na = 0, nb = 0, dot = 0;
                    for (long y = 0; y < H; y++) { na += a[At(y)] * (double)a[At(y)]; nb += b[At(y)] * (double)b[At(y)]; }
                    na = Math.Sqrt(na); nb = Math.Sqrt(nb);
                    for (long y = 0; y < H; y++) dot += a[At(y)] / na * (b[At(y)] / nb);
                    double omega = Math.Acos(dot), so = Math.Sin(omega);
                    for (long y = 0; y < H; y++)
                        expected[At(y)] = (float)(Math.Sin((1 - strength) * omega) / so * a[At(y)] + Math.Sin(strength * omega) / so * b[At(y)]);
                }
        using var want = tensor(expected).reshape(shape);
        Golden.AssertClose(varied, want, rel: 1e-5, abs: 1e-5, what: $"slerp at {strength}");
    }

    [Fact]
    public void Resize_seed_from_pastes_the_noise_of_that_size_centred()
    {
        long[] shape = [1, 4, 8, 6];                       // a 48x64 picture's latents
        using var noise = randn(shape, generator: new Generator(21));
        // From a larger picture (64x96 → [1, 4, 12, 8]): the centre of that picture's noise fills everything.
        using var larger = randn([1, 4, 12, 8], generator: new Generator(21));
        using var fromLarger = new SeedVariation(21, 0, 0, ResizeFromWidth: 64, ResizeFromHeight: 96).Apply(noise, 8);
        Golden.AssertClose(fromLarger, larger.narrow(2, 2, 8).narrow(3, 1, 6), rel: 0, abs: 0, what: "cropped centre");
        // From a smaller picture (32x32 → [1, 4, 4, 4]): pasted at the centre, the border is the picture's own noise.
        using var smaller = randn([1, 4, 4, 4], generator: new Generator(21));
        using var fromSmaller = new SeedVariation(21, 0, 0, ResizeFromWidth: 32, ResizeFromHeight: 32).Apply(noise, 8);
        Golden.AssertClose(fromSmaller.narrow(2, 2, 4).narrow(3, 1, 4), smaller, rel: 0, abs: 0, what: "pasted centre");
        Golden.AssertClose(fromSmaller.narrow(2, 0, 2), noise.narrow(2, 0, 2), rel: 0, abs: 0, what: "top border");
        // From its own size: nothing changes.
        using var same = new SeedVariation(21, 0, 0, ResizeFromWidth: 48, ResizeFromHeight: 64).Apply(noise, 8);
        Golden.AssertClose(same, noise, rel: 0, abs: 0, what: "own size");
    }

    [Fact]
    public void The_infotext_records_the_variation_as_A1111_and_reads_back()
    {
        string text = InfoText.Format("p", "", 20, "Euler", 7, 5, 512, 512, "m", variationSeed: 9, variationStrength: 0.3,
            seedResizeFrom: (640, 384));
        Assert.Contains("Model: m, Variation seed: 9, Variation seed strength: 0.3, Seed resize from: 640x384", text);
        var fields = InfoText.Parse(text);
        Assert.Equal("9", fields["Variation seed"]);
        Assert.Equal("0.3", fields["Variation seed strength"]);
        Assert.Equal("640", fields["Seed resize from-1"]);
        Assert.DoesNotContain("Variation", InfoText.Format("p", "", 20, "Euler", 7, 5, 512, 512, "m", variationSeed: 9, variationStrength: 0));
    }

    [Theory]
    [InlineData(1.5, 0, 0, "variation strength")]
    [InlineData(0.5, 512, 0, "needs a width and a height")]
    public void Bad_values_are_one_line_errors(double strength, int fromWidth, int fromHeight, string expected)
    {
        var options = Options(1) with { VariationStrength = strength, SeedResizeFromWidth = fromWidth, SeedResizeFromHeight = fromHeight };
        var e = Assert.Throws<ArgumentException>(options.Validate);
        Assert.Contains(expected, e.Message);
    }
}
