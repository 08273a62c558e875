using SharpDiffusion.Imaging;
using static TorchSharp.torch;

namespace SharpDiffusion.Pipelines;

/// <summary>Turns the clean latents x̂₀ a step predicts into pictures for a live preview: the cheap linear map
/// (<see cref="LatentPreview"/>, one pixel per latent) or a TAESD decode (<see cref="TaesdPreview"/>, full resolution).</summary>
public interface ILatentPreview : IDisposable
{
    /// <summary>Latents [B, C, h, w] (scaled, as the denoising loop holds them) → one picture per batch row.</summary>
    IReadOnlyList<RgbImage> ToImages(Tensor latents);
}

/// <summary>
/// A cheap latent → RGB picture for live previews, as AUTOMATIC1111's "Approx cheap": one fixed affine map per model,
/// rgb = W·z + b per latent pixel, no VAE decode. The map is fitted once from the model's own VAE (least squares
/// over smooth random colour fields encoded to latents against their pixels averaged over each latent cell), so
/// it fits any latent space: SD 1.x/2.x, the shipped model, others. One latent pixel = one preview pixel.
/// </summary>
public sealed class LatentPreview : ILatentPreview
{
    readonly Tensor _weight; // [C, 3]
    readonly Tensor _bias;   // [3]

    LatentPreview(Tensor weight, Tensor bias) => (_weight, _bias) = (weight, bias);

    /// <summary>Fits the map for <paramref name="pipeline"/>'s VAE (a few small encodes; deterministic).</summary>
    public static LatentPreview Fit(StableDiffusionPipeline pipeline, int samples = 8, int size = 64)
    {
        using var scope = NewDisposeScope();
        using var inference = inference_mode();
        var vae = pipeline.VaeCodec;
        int factor = vae.Format.SpatialFactor;
        size = Math.Max(size / factor, 2) * factor;
        using var generator = new Generator(0);
        // Smooth colour fields: 4×4 random colours upsampled, so a latent cell's pixels are nearly one colour.
        var coarse = rand([samples, 3, 4, 4], generator: generator) * 2 - 1;
        var images = nn.functional.interpolate(coarse, [size, size], mode: InterpolationMode.Bilinear, align_corners: true);
        using var use = vae.Weights.Use();
        using var posterior = vae.Model.Encode(images.to(vae.DType).to(pipeline.Device));
        var latents = vae.Format.FromVae(posterior.Mean.to(ScalarType.Float32).cpu());                   // [S, C, h, w]
        var targets = (nn.functional.avg_pool2d(images, factor) + 1) / 2;                                 // [S, 3, h, w] in [0, 1]
        long channels = latents.shape[1];
        var z = latents.permute(0, 2, 3, 1).reshape(-1, channels);                                        // [N, C]
        var x = cat([z, ones(z.shape[0], 1)], 1);                                                        // [N, C+1]
        var y = targets.permute(0, 2, 3, 1).reshape(-1, 3);                                               // [N, 3]
        var solution = linalg.lstsq(x, y).Solution;                                                      // [C+1, 3]
        var weight = solution.narrow(0, 0, channels).clone().DetachFromDisposeScope(); // owned by this object, whatever scope calls Fit
        var bias = solution[channels].clone().DetachFromDisposeScope();
        return new LatentPreview(weight, bias);
    }

    /// <summary>Latents [B, C, h, w] (scaled, as the denoising loop holds them) → one h×w picture per batch row.</summary>
    public IReadOnlyList<RgbImage> ToImages(Tensor latents)
    {
        using var scope = NewDisposeScope();
        var z = latents.to(ScalarType.Float32).cpu().permute(0, 2, 3, 1);                               // [B, h, w, C]
        var rgb = (matmul(z, _weight) + _bias).clamp(0, 1) * 255;                                        // [B, h, w, 3]
        using var bytes = rgb.round().to(ScalarType.Byte).contiguous();
        int b = (int)bytes.shape[0], h = (int)bytes.shape[1], w = (int)bytes.shape[2];
        var all = bytes.data<byte>().ToArray();
        return Enumerable.Range(0, b).Select(i => new RgbImage(w, h, all[(i * h * w * 3)..((i + 1) * h * w * 3)])).ToList();
    }

    public void Dispose()
    {
        _weight.Dispose();
        _bias.Dispose();
    }
}
