using SharpDiffusion.Schedulers;
using static TorchSharp.torch;

namespace SharpDiffusion.Pipelines;

/// <summary>How the clean latents x̂₀ follow from a denoiser's input and output at timestep t (previews only). A diffusion
/// schedule: <see cref="DenoisedEstimate"/>; flow matching: x̂₀ = x_t − σ·v.</summary>
public interface ICleanEstimate
{
    /// <param name="modelInput">x_t as the denoiser saw it, [B, C, h, w] (the latent channels only).</param>
    /// <param name="modelOutput">the guided prediction [B, C, h, w].</param>
    /// <returns>x̂₀ [B, C, h, w] float32.</returns>
    Tensor EstimateClean(Tensor modelInput, Tensor modelOutput, float t);
}

/// <summary>
/// The clean latents x̂₀ the model predicts at one step of a diffusion (β) schedule, for live previews: from the UNet's input x_t (after the
/// scheduler's scaling, so in DDPM scale for every scheduler) and its guided output at timestep t,
/// ε-prediction: x̂₀ = (x_t − √(1−ᾱ_t)·ε)/√ᾱ_t; v-prediction: x̂₀ = √ᾱ_t·x_t − √(1−ᾱ_t)·v; sample: the output itself.
/// ᾱ at a fractional t (LMS, Euler, …) comes from ln σ interpolated linearly, as k-diffusion's t → σ.
/// Used only to show progress: no result depends on it.
/// </summary>
public sealed class DenoisedEstimate : ICleanEstimate
{
    readonly float[] _logSigmas;
    readonly string _predictionType;

    public DenoisedEstimate(IScheduler scheduler)
    {
        var schedule = scheduler is SchedulerBase b ? b.NoiseSchedule : NoiseSchedule.FromConfig(scheduler.Config);
        _logSigmas = schedule.LogSigmas;
        _predictionType = scheduler.Config.GetString("prediction_type", "epsilon");
    }

    /// <summary>ᾱ at timestep <paramref name="t"/> (clamped to the training range).</summary>
    public double AlphaCumprod(float t)
    {
        double clamped = Math.Clamp(t, 0, _logSigmas.Length - 1);
        int low = (int)Math.Floor(clamped), high = Math.Min(low + 1, _logSigmas.Length - 1);
        double w = clamped - low;
        double sigma = Math.Exp((1 - w) * _logSigmas[low] + w * _logSigmas[high]);
        return 1 / (1 + sigma * sigma);                                  // σ² = (1−ᾱ)/ᾱ
    }

    /// <inheritdoc/>
    public Tensor EstimateClean(Tensor modelInput, Tensor modelOutput, float t)
    {
        double alpha = AlphaCumprod(t), a = Math.Sqrt(alpha), s = Math.Sqrt(1 - alpha);
        var x = modelInput.to(ScalarType.Float32);
        var output = modelOutput.to(ScalarType.Float32);
        return _predictionType switch
        {
            "v_prediction" => a * x - s * output,
            "sample" => output.clone(),
            _ => (x - s * output) / a,
        };
    }
}
