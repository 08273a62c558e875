using SharpDiffusion.Schedulers;
using static TorchSharp.torch;

namespace SharpDiffusion.Pipelines;

/// <summary>diffusers' StableDiffusionPipeline: pure noise (drawn, or the caller's <c>latents</c>) × init_noise_sigma,
/// every timestep, no hook.</summary>
public static class TextToImage
{
    public static DenoisingStart Prepare(StableDiffusionPipeline pipe, GenerationOptions options, IScheduler scheduler,
        int batch, int width, int height, Generator generator)
    {
        long[] shape = [batch, pipe.Vae.Config.LatentChannels, height / pipe.VaeScaleFactor, width / pipe.VaeScaleFactor];
        using var noise = options.Latents is { } given ? CheckedLatents(given, shape) : pipe.DrawNoise(shape, generator);
        return new DenoisingStart(noise * scheduler.InitNoiseSigma, scheduler.Timesteps);
    }

    static Tensor CheckedLatents(Tensor given, long[] shape)
    {
        if (!given.shape.SequenceEqual(shape))
            throw new ArgumentException($"Initial latents must be [{string.Join(", ", shape)}] for this call; got [{string.Join(", ", given.shape)}].");
        return given.to(ScalarType.Float32, copy: true);
    }
}
