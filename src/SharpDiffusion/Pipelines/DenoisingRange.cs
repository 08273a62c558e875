using SharpDiffusion.Schedulers;
using static TorchSharp.torch;

namespace SharpDiffusion.Pipelines;

/// <summary>
/// diffusers' denoising_end and denoising_start (the "ensemble of expert denoisers" of SDXL base + refiner): a fraction
/// f of the training schedule names the timestep cutoff t_c = round(T − f·T) (T = num_train_timesteps). The first
/// expert runs the timesteps ≥ t_c and returns its still-noisy latents; the second runs the timesteps &lt; t_c on
/// exactly those latents (no noise added, nothing drawn).
/// </summary>
public static class DenoisingRange
{
    static int Cutoff(IScheduler scheduler, double fraction)
    {
        int train = scheduler.Config.GetInt("num_train_timesteps", 1000);
        return (int)Math.Round(train - fraction * train, MidpointRounding.ToEven);       // Python's round()
    }

    /// <summary>denoising_end: the leading timesteps ≥ t_c (all of them when <paramref name="end"/> is null).</summary>
    public static IReadOnlyList<float> Until(IReadOnlyList<float> timesteps, IScheduler scheduler, double? end)
    {
        if (end is not double f) return timesteps;
        int cutoff = Cutoff(scheduler, f);
        return timesteps.Take(timesteps.Count(t => t >= cutoff)).ToArray();
    }

    /// <summary>denoising_start (diffusers' img2img get_timesteps): the trailing timesteps &lt; t_c of the whole schedule,
    /// one more for a second-order scheduler whose count comes out even (so its last step is a whole one).</summary>
    public static IReadOnlyList<float> From(IScheduler scheduler, double start)
    {
        int cutoff = Cutoff(scheduler, start);
        int count = scheduler.Timesteps.Count(t => t < cutoff);
        if (scheduler.Order == 2 && count % 2 == 0) count++;
        return scheduler.Timesteps.Skip(scheduler.Timesteps.Count - count).ToArray();
    }

    /// <summary>The second expert's start: <paramref name="latents"/> [1 or B, C, h, w] (the first expert's output) taken
    /// as they are at the first timestep &lt; t_c.</summary>
    public static DenoisingStart Resume(StableDiffusionPipeline pipe, Tensor latents, double start, IScheduler scheduler, int batch)
    {
        if (latents.shape[0] != 1 && latents.shape[0] != batch)
            throw new ArgumentException($"Image latents hold {latents.shape[0]} rows for a batch of {batch}; give 1 or {batch}.");
        var timesteps = From(scheduler, start);
        if (timesteps.Count == 0)
            throw new ArgumentException($"denoising_start {start} leaves no step of the {scheduler.Timesteps.Count}-step schedule; lower it or use more steps.");
        var resumed = latents.to(ScalarType.Float32).to(pipe.Device).expand(batch, -1, -1, -1).contiguous().clone(); // [B, C, h, w], the loop's own
        return new DenoisingStart(resumed, timesteps);
    }
}
