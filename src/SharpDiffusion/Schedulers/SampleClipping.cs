using static TorchSharp.torch;

namespace SharpDiffusion.Schedulers;

/// <summary>
/// DDIM's and DDPM's bound on the predicted x̂_0: dynamic thresholding when <c>thresholding</c> is set, otherwise
/// clamping to ±<c>clip_sample_range</c> when <c>clip_sample</c> is (on by default for DDIM/DDPM, off for LCM, as in diffusers).
/// </summary>
public sealed record SampleClipping(bool Thresholding, double DynamicThresholdingRatio, double SampleMaxValue, bool ClipSample, float ClipSampleRange)
{
    public static SampleClipping FromConfig(SchedulerConfig config, bool defaultClipSample = true) => new(
        Thresholding: config.GetBool("thresholding", false),
        DynamicThresholdingRatio: config.GetDouble("dynamic_thresholding_ratio", 0.995),
        SampleMaxValue: config.GetDouble("sample_max_value", 1.0),
        ClipSample: config.GetBool("clip_sample", defaultClipSample),
        ClipSampleRange: (float)config.GetDouble("clip_sample_range", 1.0));

    /// <summary>x̂_0 thresholded or clipped as configured (the input itself when neither is on).</summary>
    public Tensor Apply(Tensor predOriginal) =>
        Thresholding ? AlphaMath.Threshold(predOriginal, DynamicThresholdingRatio, SampleMaxValue)
        : ClipSample ? predOriginal.clamp(-ClipSampleRange, ClipSampleRange)
        : predOriginal;
}
