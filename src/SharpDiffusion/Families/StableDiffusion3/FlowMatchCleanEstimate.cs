using SharpDiffusion.Pipelines;
using SharpDiffusion.Schedulers;
using static TorchSharp.torch;

namespace SharpDiffusion.Families.StableDiffusion3;

/// <summary>
/// The clean latents a flow-matching model predicts (previews only): x_t = (1 − σ)·x₀ + σ·ε and v = ε − x₀, so
/// x̂₀ = x_t − σ·v, with σ = t / num_train_timesteps (the scheduler's timesteps are σ·1000).
/// </summary>
public sealed class FlowMatchCleanEstimate(IScheduler scheduler) : ICleanEstimate
{
    readonly double _trainTimesteps = scheduler.Config.GetInt("num_train_timesteps", 1000);

    public Tensor EstimateClean(Tensor modelInput, Tensor modelOutput, float t)
    {
        double sigma = t / _trainTimesteps;
        return modelInput.to(ScalarType.Float32) - sigma * modelOutput.to(ScalarType.Float32);
    }
}
