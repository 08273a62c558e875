using static TorchSharp.torch;

namespace SharpDiffusion.Conditioning;

/// <summary>AUTOMATIC1111's prompt emphasis on one chunk's text embeddings.</summary>
public static class Emphasis
{
    /// <summary>"Original": z' = z·w (one weight per token), then z' · mean(z)/mean(z'), the means over the whole
    /// chunk batch [B, 77, D] (all tokens and channels), so the embeddings keep their overall level. float32.</summary>
    public static Tensor Original(Tensor z, Tensor weights) // z [B, 77, D], weights [B, 77]
    {
        using var scope = NewDisposeScope();
        var z32 = z.to(ScalarType.Float32);
        var originalMean = z32.mean();
        var weighted = z32 * weights.to(ScalarType.Float32).to(z.device).unsqueeze(-1);
        var newMean = weighted.mean();
        return (weighted * (originalMean / newMean)).MoveToOuterDisposeScope();
    }
}
