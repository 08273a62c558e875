using static TorchSharp.torch;

namespace SharpDiffusion.Pipelines;

/// <summary>
/// What a task adds to the shared denoising loop, at the two points where diffusers' pipelines differ.
/// Both default to doing nothing (text-to-image, img2img).
/// </summary>
public interface IStepHook
{
    /// <summary>The denoiser's input after the scheduler's scaling [(2)B, C, h, w] → what the denoiser takes
    /// (inpainting UNets: [(2)B, 9, h, w] with the mask and the masked image's latents). Returns a new tensor or the same.</summary>
    Tensor ExtendModelInput(Tensor scaledInput) => scaledInput;

    /// <summary>After scheduler step <paramref name="index"/> (of <paramref name="timesteps"/>): latents [B, C, h, w] →
    /// the latents the next step starts from. Returns a new tensor or the same.</summary>
    Tensor AfterStep(int index, IReadOnlyList<float> timesteps, Tensor latents) => latents;
}
