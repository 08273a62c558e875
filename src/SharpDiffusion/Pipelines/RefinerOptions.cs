using System.Globalization;

namespace SharpDiffusion.Pipelines;

/// <summary>
/// The SDXL refiner as a second expert (diffusers' base + refiner ensemble; A1111's refiner_checkpoint and
/// refiner_switch_at): the base model denoises the timesteps down to the switch (denoising_end), the refiner the rest
/// from those latents (denoising_start), with its own scheduler built from the same options and a new generator of the
/// same seed. The refiner is a loaded pipeline (<see cref="StableDiffusionPipeline.Load"/> of a refiner folder or
/// sd_xl_refiner_1.0.safetensors); with <see cref="Loading.LoadOptions.LowMemory"/> its weights are read only when its
/// pass runs, after the base's have left.
/// </summary>
public sealed record RefinerOptions
{
    /// <summary>The refiner (an SDXL refiner: OpenCLIP bigG only, aesthetic-score time ids).</summary>
    public required StableDiffusionPipeline Refiner { get; init; }

    /// <summary>refiner_switch_at: the fraction of the schedule the base runs (diffusers' denoising_end / denoising_start).</summary>
    public double SwitchAt { get; init; } = DefaultSwitchAt;

    /// <summary>A1111's and diffusers' examples' 0.8.</summary>
    public const double DefaultSwitchAt = 0.8;

    /// <summary>The refiner's name and AUTOMATIC1111 short hash for the infotext ("Refiner: name [hash]").</summary>
    public string InfoName => Refiner.ModelHash is { } hash ? $"{Refiner.ModelName} [{hash}]" : Refiner.ModelName;

    /// <summary>Refuses, in one line, a switch that leaves either expert nothing to do.</summary>
    public void Validate() => CheckSwitch(SwitchAt);

    public static void CheckSwitch(double switchAt)
    {
        if (!double.IsFinite(switchAt) || switchAt <= 0 || switchAt >= 1)
            throw new ArgumentException($"The refiner switch must be between 0 and 1 (the fraction of the steps the base model runs); got {switchAt.ToString(CultureInfo.InvariantCulture)}.");
    }
}
