using static TorchSharp.torch;

namespace SharpDiffusion.Models.Transformers;

/// <summary>
/// diffusers' FluxPosEmbed: rotary position tables from each token's ids (axis 0: 0 for everything in Flux.1; axis 1 and
/// 2: the image token's row and column, 0 for text). Axis a with n_a channels has frequencies ω_k = θ^(−2k/n_a), k &lt; n_a/2,
/// θ = 10000; the angle pos·ω_k is computed in float64 (as diffusers on CPU) and each cos/sin value is repeated twice
/// (interleaved), the axes concatenated: cos, sin [S, Σn_a] float32.
/// </summary>
public sealed class FluxPosEmbed(int[] axesDims, double theta = 10000)
{
    /// <param name="ids">[S, axes] positions (float; text tokens first, then the image's).</param>
    public (Tensor Cos, Tensor Sin) Forward(Tensor ids)
    {
        if (ids.dim() != 2 || ids.shape[1] != axesDims.Length)
            throw new ArgumentException($"Flux position ids must be [S, {axesDims.Length}], got [{string.Join(", ", ids.shape)}]");
        using var cpu = ids.to(ScalarType.Float32).cpu().contiguous();
        var positions = cpu.data<float>().ToArray();
        long s = ids.shape[0];
        int width = axesDims.Sum(), axes = axesDims.Length;
        var cos = new float[s * width];
        var sin = new float[s * width];
        for (long row = 0; row < s; row++)
        {
            int column = 0;
            for (int a = 0; a < axes; a++)
            {
                double pos = positions[row * axes + a];
                for (int k = 0; k < axesDims[a] / 2; k++)
                {
                    double angle = pos * (1.0 / Math.Pow(theta, 2.0 * k / axesDims[a]));
                    float c = (float)Math.Cos(angle), n = (float)Math.Sin(angle);
                    long at = row * width + column + 2 * k;
                    (cos[at], cos[at + 1], sin[at], sin[at + 1]) = (c, c, n, n);
                }
                column += axesDims[a];
            }
        }
        return (tensor(cos, [s, width]).to(ids.device), tensor(sin, [s, width]).to(ids.device));
    }

    /// <summary>diffusers' apply_rotary_emb (use_real, unbind dim −1): channel pairs (x₂ᵢ, x₂ᵢ₊₁) rotate by their angle,
    /// x·cos + rot(x)·sin with rot(x) = (−x₂ᵢ₊₁, x₂ᵢ), in float32, cast back to x's dtype.</summary>
    /// <param name="x">[B, H, S, d].</param>
    /// <param name="cos">[S, d] (and <paramref name="sin"/>).</param>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        var pairs = x.reshape([.. x.shape[..^1], -1, 2]);                   // [B, H, S, d/2, 2]
        var rotated = stack([-pairs.select(-1, 1), pairs.select(-1, 0)], -1).reshape(x.shape);
        var output = x.to(ScalarType.Float32) * cos + rotated.to(ScalarType.Float32) * sin;
        return output.to(x.dtype).MoveToOuterDisposeScope();
    }
}
