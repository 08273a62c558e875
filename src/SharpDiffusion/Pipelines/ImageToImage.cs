using SharpDiffusion.Schedulers;
using static TorchSharp.torch;

namespace SharpDiffusion.Pipelines;

/// <summary>
/// diffusers' StableDiffusionImg2ImgPipeline: the image's latents, noised to the first timestep that
/// <c>strength</c> keeps. Draws: (1) the VAE posterior sample [1, C, h, w], (2) the noise [B, C, h, w].
/// </summary>
public static class ImageToImage
{
    /// <summary>diffusers' get_timesteps: keep the last int(N·strength) steps (× the scheduler's order).</summary>
    public static IReadOnlyList<float> CutTimesteps(IScheduler scheduler, int numInferenceSteps, double strength)
    {
        int initTimestep = Math.Min((int)(numInferenceSteps * strength), numInferenceSteps);
        int tStart = Math.Max(numInferenceSteps - initTimestep, 0);
        return scheduler.Timesteps.Skip(tStart * scheduler.Order).ToArray();
    }

    /// <param name="image">[1, 3, H, W] in [-1, 1].</param>
    public static DenoisingStart Prepare(StableDiffusionPipeline pipe, Tensor image, double strength, IScheduler scheduler,
        int numInferenceSteps, int batch, Generator generator, SeedVariation? variation = null)
    {
        var timesteps = CutTimesteps(scheduler, numInferenceSteps, strength);
        using var scope = NewDisposeScope();
        var clean = pipe.EncodeImage(image, generator).expand(batch, -1, -1, -1);  // [B, C, h, w]
        return Noised(pipe, clean, scheduler, timesteps, generator, variation);
    }

    /// <summary>The same from latents given as the image (diffusers: an image with the latent channels is used as it is):
    /// [1 or B, C, h, w]; draws only the noise.</summary>
    public static DenoisingStart PrepareFromLatents(StableDiffusionPipeline pipe, Tensor latents, double strength, IScheduler scheduler,
        int numInferenceSteps, int batch, Generator generator, SeedVariation? variation = null)
    {
        var timesteps = CutTimesteps(scheduler, numInferenceSteps, strength);
        using var scope = NewDisposeScope();
        if (latents.shape[0] != 1 && latents.shape[0] != batch)
            throw new ArgumentException($"Image latents hold {latents.shape[0]} rows for a batch of {batch}; give 1 or {batch}.");
        var clean = latents.to(ScalarType.Float32).to(pipe.Device).expand(batch, -1, -1, -1);   // [B, C, h, w]
        return Noised(pipe, clean, scheduler, timesteps, generator, variation);
    }

    static DenoisingStart Noised(StableDiffusionPipeline pipe, Tensor clean, IScheduler scheduler, IReadOnlyList<float> timesteps,
        Generator generator, SeedVariation? variation)
    {
        // Runs inside the caller's dispose scope: the noised latents leave it, the rest is freed with it.
        var noise = InitialNoise.Draw(clean.shape, generator, pipe.Device, variation, pipe.LatentFormat.SpatialFactor);
        var latents = scheduler.AddNoise(clean, noise, timesteps[0]);              // no init_noise_sigma here
        return new DenoisingStart(latents.MoveToOuterDisposeScope(), timesteps);
    }
}
