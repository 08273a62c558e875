using static TorchSharp.torch;

namespace SharpDiffusion.Pipelines;

/// <summary>
/// AUTOMATIC1111's variation seeds and "resize seed from" (modules/rng.py, ImageRNG.first), applied to the noise a seed
/// draws. With a variation strength s the noise is slerp(s, noise(seed), noise(variation seed)): s = 0 is the seed's
/// picture, s = 1 the variation seed's. With a resize-from size the seed's noise is drawn at that size and pasted, centred
/// (cropped or bordered by the full-size noise), so a picture keeps its composition when the size changes.
/// Our seeds mean diffusers' draws (one generator for the batch), so "the noise of a seed" is the batch the pipeline
/// draws from it, and the variation seed's noise is the batch it would draw: strength 1 gives exactly the picture of
/// that seed.
/// </summary>
public sealed record SeedVariation(long Seed, long VariationSeed, double Strength, int ResizeFromWidth = 0, int ResizeFromHeight = 0)
{
    bool Resizes => ResizeFromWidth > 0 && ResizeFromHeight > 0;

    /// <summary>The variation a call asks for (null when it asks none), with the seed it runs with and its variation seed
    /// (chosen at random for −1/null, as A1111).</summary>
    public static SeedVariation? For(GenerationOptions options, long seed, long variationSeed) =>
        options.VariationStrength > 0 || options.SeedResizeFromWidth > 0 && options.SeedResizeFromHeight > 0
            ? new SeedVariation(seed, variationSeed, options.VariationStrength, options.SeedResizeFromWidth, options.SeedResizeFromHeight)
            : null;

    /// <summary>The noise <paramref name="noise"/> [B, C, h, w] (drawn by the pipeline's generator as without a variation, so
    /// the generator's later draws are unchanged) varied; the result is new, float32, on the CPU.</summary>
    public Tensor Apply(Tensor noise, int spatialFactor)
    {
        using var scope = NewDisposeScope();
        var shape = noise.shape;
        long[] drawn = Resizes ? [shape[0], shape[1], ResizeFromHeight / spatialFactor, ResizeFromWidth / spatialFactor] : shape;
        var seedNoise = Resizes ? Draw(Seed, drawn) : noise;
        if (Strength > 0)
            seedNoise = Slerp(Strength, seedNoise, Draw(VariationSeed, drawn));
        var result = Resizes ? PasteCentred(seedNoise, noise) : seedNoise.clone();
        return result.MoveToOuterDisposeScope();
    }

    static Tensor Draw(long seed, long[] shape)
    {
        using var generator = new Generator((ulong)seed);
        return randn(shape, dtype: ScalarType.Float32, generator: generator);
    }

    /// <summary>A1111's slerp, per image: the angle is taken along the image's height (its tensors are [C, H, W] and it
    /// normalises over dim 1), one angle per (channel, column). Nearly parallel noises (mean cos > 0.9995) fall back to
    /// low·s + high·(1 − s), as A1111 writes it.</summary>
    static Tensor Slerp(double s, Tensor low, Tensor high)                                   // [B, C, H, W]
    {
        var lowNorm = low / low.square().sum(2, keepdim: true).sqrt();                      // ‖·‖ over H
        var highNorm = high / high.square().sum(2, keepdim: true).sqrt();
        var dot = (lowNorm * highNorm).sum(2);                                               // [B, C, W]
        var omega = dot.acos();
        var so = omega.sin();
        var slerped = ((1 - s) * omega).sin().div(so).unsqueeze(2) * low + (s * omega).sin().div(so).unsqueeze(2) * high;
        var parallel = dot.mean([1, 2]).gt(0.9995).view(-1, 1, 1, 1);                        // [B, 1, 1, 1]
        return where(parallel, low * s + high * (1 - s), slerped);
    }

    /// <summary>A1111's paste: <paramref name="small"/> centred in <paramref name="full"/> (offsets floored as Python's //),
    /// cropped where it is larger.</summary>
    static Tensor PasteCentred(Tensor small, Tensor full)
    {
        var x = full.clone();
        long dx = FloorDiv(full.shape[3] - small.shape[3], 2), dy = FloorDiv(full.shape[2] - small.shape[2], 2);
        long w = dx >= 0 ? small.shape[3] : small.shape[3] + 2 * dx, h = dy >= 0 ? small.shape[2] : small.shape[2] + 2 * dy;
        long tx = Math.Max(dx, 0), ty = Math.Max(dy, 0), sx = Math.Max(-dx, 0), sy = Math.Max(-dy, 0);
        x.narrow(2, ty, h).narrow(3, tx, w).copy_(small.narrow(2, sy, h).narrow(3, sx, w));
        return x;
    }

    static long FloorDiv(long a, long b) => (long)Math.Floor(a / (double)b);
}
