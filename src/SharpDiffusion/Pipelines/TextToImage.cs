using SharpDiffusion.Schedulers;
using static TorchSharp.torch;

namespace SharpDiffusion.Pipelines;

/// <summary>diffusers' StableDiffusionPipeline: pure noise (drawn, or the caller's <c>latents</c>) × init_noise_sigma,
/// every timestep, no hook.</summary>
public static class TextToImage
{
    public static DenoisingStart Prepare(StableDiffusionPipeline pipe, GenerationOptions options, IScheduler scheduler,
        int batch, int width, int height, Generator generator, SeedVariation? variation = null)
    {
        var shape = pipe.LatentFormat.Shape(batch, width, height);                    // [B, C, H/f, W/f]
        using var noise = options.Latents is { } given ? CheckedLatents(given, shape) : InitialNoise.Draw(shape, generator, pipe.Device, variation, pipe.LatentFormat.SpatialFactor);
        return new DenoisingStart(noise * scheduler.InitNoiseSigma, scheduler.Timesteps);
    }

    static Tensor CheckedLatents(Tensor given, long[] shape)
    {
        if (!given.shape.SequenceEqual(shape))
            throw new ArgumentException($"Initial latents must be [{string.Join(", ", shape)}] for this call; got [{string.Join(", ", given.shape)}].");
        return given.to(ScalarType.Float32, copy: true);
    }
}
