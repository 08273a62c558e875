using SharpDiffusion.Conditioning;
using SharpDiffusion.Families;
using SharpDiffusion.Loading;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Schedulers;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Sd3;

/// <summary>The denoiser with its calls seen: every timestep, the first call's inputs and output (copied).</summary>
sealed class RecordingDenoiser(IDenoiser inner) : IDenoiser
{
    public List<float> Timesteps { get; } = [];
    public DenoiserInput? First { get; private set; }
    public Tensor? FirstOutput { get; private set; }

    public ComponentWeights Weights => inner.Weights;
    public bool BatchesGuidance => inner.BatchesGuidance;
    public GuidanceSettings Guidance(GenerationOptions options) => inner.Guidance(options);
    public long InChannels => inner.InChannels;
    public int DefaultSampleSize => inner.DefaultSampleSize;
    public long FullResolutionChannels => inner.FullResolutionChannels;
    public void Validate(GenerationOptions options) => inner.Validate(options);
    public void SetTimesteps(IScheduler scheduler, int steps, long[] latentShape) => inner.SetTimesteps(scheduler, steps, latentShape);
    public ICleanEstimate CleanEstimate(IScheduler scheduler) => inner.CleanEstimate(scheduler);
    public IDenoiserRun Start(GenerationOptions options) => new Run(this, inner.Start(options));

    sealed class Run(RecordingDenoiser owner, IDenoiserRun run) : IDenoiserRun
    {
        public Tensor Predict(DenoiserInput input)
        {
            var prediction = run.Predict(input);
            owner.Timesteps.Add(input.Timestep);
            if (owner.First is null)
            {
                var c = input.Conditioning;
                owner.First = input with
                {
                    HiddenStates = input.HiddenStates.clone().DetachFromDisposeScope(),
                    Conditioning = new TextConditioning(c.EncoderHiddenStates.clone().DetachFromDisposeScope()) { Pooled = c.Pooled!.clone().DetachFromDisposeScope() },
                };
                owner.FirstOutput = prediction.clone().DetachFromDisposeScope();
            }
            return prediction;
        }

        public void Dispose() => run.Dispose();
    }
}

/// <summary>The loaded pipeline's parts with a <see cref="RecordingDenoiser"/> in place of its denoiser.</summary>
static class Recording
{
    /// <summary>A pipeline sharing <paramref name="loaded"/>'s weights (so not to be disposed) whose denoiser calls are recorded.</summary>
    public static (StableDiffusionPipeline Pipeline, RecordingDenoiser Recorder) Wrap(StableDiffusionPipeline loaded)
    {
        var recorder = new RecordingDenoiser(loaded.Denoiser);
        var pipeline = new StableDiffusionPipeline(new ModelComponents
        {
            Family = loaded.Family,
            Conditioner = loaded.Conditioner,
            Denoiser = recorder,
            Vae = loaded.VaeCodec,
            SchedulerConfig = loaded.SchedulerConfig,
        }, loaded.ModelName, new LoadOptions());
        return (pipeline, recorder);
    }
}
