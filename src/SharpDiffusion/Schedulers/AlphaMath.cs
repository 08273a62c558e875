using static TorchSharp.torch;

namespace SharpDiffusion.Schedulers;

/// <summary>
/// Formulas shared by the schedulers that work with ᾱ_t directly (DDIM, DDPM, PNDM): x_t = √ᾱ_t·x_0 + √(1-ᾱ_t)·ε.
/// Scalars are float32, rounded after every operation as diffusers' 0-d float32 tensors are.
/// </summary>
public static class AlphaMath
{
    /// <summary>√ᾱ_t·x_0 + √(1-ᾱ_t)·ε (diffusers' <c>add_noise</c> for DDPM-style schedulers).</summary>
    public static Tensor AddNoise(Tensor original, Tensor noise, float alphaCumprod)
    {
        using var scope = NewDisposeScope();
        var noisy = MathF.Sqrt(alphaCumprod) * original + MathF.Sqrt(1f - alphaCumprod) * noise;
        return noisy.MoveToOuterDisposeScope();
    }

    /// <summary>ᾱ at <paramref name="t"/> and at the following inference timestep <paramref name="prevT"/> (for the
    /// step past t = 0, which has none, <paramref name="finalAlphaCumprod"/>), with β̄ = 1 - ᾱ of both.</summary>
    public static (float AlphaProd, float AlphaProdPrev, float BetaProd, float BetaProdPrev) StepAlphas(
        NoiseSchedule schedule, int t, int prevT, float finalAlphaCumprod)
    {
        float alphaProd = schedule.AlphasCumprod[t];
        float alphaProdPrev = prevT >= 0 ? schedule.AlphasCumprod[prevT] : finalAlphaCumprod;
        return (alphaProd, alphaProdPrev, 1f - alphaProd, 1f - alphaProdPrev);
    }

    /// <summary>(x̂_0, ε̂) from the model output at ᾱ_t: epsilon: x̂_0 = (x - √(1-ᾱ)·ε)/√ᾱ;
    /// sample: ε̂ = (x - √ᾱ·x̂_0)/√(1-ᾱ); v_prediction: x̂_0 = √ᾱ·x - √(1-ᾱ)·v, ε̂ = √ᾱ·v + √(1-ᾱ)·x.</summary>
    public static (Tensor PredOriginal, Tensor PredEpsilon) Predict(string predictionType, Tensor modelOutput, Tensor sample, float alphaProd)
    {
        float betaProd = 1f - alphaProd;
        float sqrtAlpha = MathF.Sqrt(alphaProd), sqrtBeta = MathF.Sqrt(betaProd);
        return predictionType switch
        {
            "epsilon" => ((sample - sqrtBeta * modelOutput) / sqrtAlpha, modelOutput.alias()),
            "sample" => (modelOutput.alias(), (sample - sqrtAlpha * modelOutput) / sqrtBeta),
            "v_prediction" => (sqrtAlpha * sample - sqrtBeta * modelOutput, sqrtAlpha * modelOutput + sqrtBeta * sample),
            _ => throw new ArgumentException($"prediction_type '{predictionType}' must be one of 'epsilon', 'sample' or 'v_prediction'"),
        };
    }

    /// <summary>Dynamic thresholding (Imagen, arXiv 2205.11487): per sample, s = clamp(quantile(|x̂_0|, ratio), 1,
    /// sample_max_value) and x̂_0 ← clamp(x̂_0, -s, s)/s.</summary>
    public static Tensor Threshold(Tensor predOriginal, double ratio, double sampleMaxValue)
    {
        using var scope = NewDisposeScope();
        var dtype = predOriginal.dtype;
        var shape = predOriginal.shape;
        var flat = predOriginal.to(ScalarType.Float32).reshape(shape[0], -1);                 // [B, C·H·W]
        var s = quantile(flat.abs(), ratio, dim: 1).clamp(1.0, sampleMaxValue).unsqueeze(1);  // [B, 1]
        var result = (flat.clamp(-s, s) / s).reshape(shape).to(dtype);
        return result.MoveToOuterDisposeScope();
    }
}
