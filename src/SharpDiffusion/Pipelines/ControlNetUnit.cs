using SharpDiffusion.Imaging;
using SharpDiffusion.Models.ControlNet;

namespace SharpDiffusion.Pipelines;

/// <summary>
/// One ControlNet of a call (diffusers' controlnet, image, controlnet_conditioning_scale, control_guidance_start/end and
/// guess_mode, per ControlNet): the model (a folder or single file to load for the call, or a loaded model the caller
/// keeps), its control image (resized to the output size, RGB in [0, 1] as diffusers' control image processor gives it),
/// how strongly and over which part of the steps it steers. Several units' residuals are summed.
/// </summary>
public sealed record ControlNetUnit
{
    /// <summary>A diffusers ControlNet folder or an original-layout file (.pth / .safetensors); or give <see cref="Model"/>.</summary>
    public string? ModelPath { get; init; }
    /// <summary>A loaded ControlNet in the pipeline's dtype and device; the caller keeps ownership.</summary>
    public ControlNetModel? Model { get; init; }
    /// <summary>The control image (an edge map, a depth map, …), already preprocessed.</summary>
    public required RgbImage Image { get; init; }
    /// <summary>diffusers' controlnet_conditioning_scale: every residual × this.</summary>
    public double Scale { get; init; } = 1.0;
    /// <summary>diffusers' control_guidance_start / _end: the fraction of the steps it acts on.</summary>
    public double Start { get; init; }
    public double End { get; init; } = 1.0;
    /// <summary>diffusers' guess_mode: the ControlNet sees the conditional rows only (the unconditional ones get no residuals)
    /// and its residuals are scaled from 0.1 (shallowest) to 1 (mid block), so it steers even without a prompt.</summary>
    public bool GuessMode { get; init; }
    /// <summary>sd-webui-controlnet's control_mode (<see cref="Pipelines.ControlMode"/>): Balanced is diffusers' plain run; the
    /// other two fade the shallow residuals, and "ControlNet is more important" leaves the unconditional rows without them.</summary>
    public ControlMode ControlMode { get; init; } = ControlMode.Balanced;
    /// <summary>The unit as sd-webui-controlnet's infotext gives it ("Module: canny, Model: …, Weight: 1.0, …",
    /// <see cref="ImageOutput.ControlNetInfo"/>); written as "ControlNet N" into the PNG. Null = not written.</summary>
    public string? InfoText { get; init; }

    /// <summary>Whether step <paramref name="step"/> of <paramref name="steps"/> gets the residuals: diffusers' controlnet_keep,
    /// 1 − (i/N &lt; start or (i+1)/N &gt; end), in double with strict comparisons (step 2 of 10 is kept at start 0.2).</summary>
    public bool Keeps(int step, int steps) => steps <= 0 || !((double)step / steps < Start || (double)(step + 1) / steps > End);

    /// <summary>Refuses, in one line, values diffusers refuses (its check_inputs).</summary>
    public void Validate(int index)
    {
        string which = $"ControlNet {index + 1}";
        if ((ModelPath is null) == (Model is null))
            throw new ArgumentException($"{which}: give either a model path or a loaded model.");
        if (ModelPath is not null && !File.Exists(ModelPath) && !Directory.Exists(ModelPath))
            throw new FileNotFoundException($"{which}: {ModelPath} is neither a ControlNet folder nor a file.", ModelPath);
        if (!double.IsFinite(Scale))
            throw new ArgumentException($"{which}: the conditioning scale must be a number; got {Scale}.");
        if (!(Start >= 0 && Start < End && End <= 1))
            throw new ArgumentException($"{which}: control guidance start {Start} and end {End} must satisfy 0 ≤ start < end ≤ 1.");
        if (!Enum.IsDefined(ControlMode))
            throw new ArgumentException($"{which}: control mode {(int)ControlMode} is not one of Balanced (0), PromptMoreImportant (1), ControlNetMoreImportant (2).");
        if (GuessMode && ControlMode != ControlMode.Balanced)
            throw new ArgumentException($"{which}: guess mode (diffusers) and control mode \"{ControlMode.ExtensionName()}\" (sd-webui-controlnet) " +
                "both reweigh the residuals; use one of them.");
    }
}
