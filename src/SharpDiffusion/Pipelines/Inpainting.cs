using SharpDiffusion.Schedulers;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpDiffusion.Pipelines;

/// <summary>
/// diffusers' StableDiffusionInpaintPipeline. Inpainting UNets (in_channels 9) see the mask and the masked image's
/// latents beside the latents at every step; ordinary UNets (4) get the legacy blend: after each step the area to
/// keep is replaced by the original's latents noised to the next timestep.
/// Draws: strength &lt; 1 or a 4-channel UNet: (1) the image's VAE sample, (2) the noise, (3) the masked image's VAE
/// sample; strength 1 with a 9-channel UNet: (1) the noise, (2) the masked image's VAE sample.
/// </summary>
public static class Inpainting
{
    /// <param name="image">[1, 3, H, W] in [-1, 1].</param>
    /// <param name="mask">[1, 1, H, W], 1 = repaint, 0 = keep (binarised).</param>
    public static DenoisingStart Prepare(StableDiffusionPipeline pipe, Tensor image, Tensor mask, double strength,
        IScheduler scheduler, int numInferenceSteps, int batch, bool guided, Generator generator, SeedVariation? variation = null)
    {
        long unetChannels = pipe.Denoiser.InChannels;
        if (unetChannels is not (4 or 9))
            throw new NotSupportedException($"Inpainting needs a UNet with 9 input channels (an inpainting model) or 4 (an ordinary one); this one has {unetChannels}.");
        bool legacy = unetChannels == 4;
        var timesteps = ImageToImage.CutTimesteps(scheduler, numInferenceSteps, strength);
        bool fromNoise = strength == 1.0; // diffusers' is_strength_max

        using var scope = NewDisposeScope();
        Tensor? imageLatents = legacy || !fromNoise
            ? pipe.EncodeImage(image, generator).expand(batch, -1, -1, -1)        // [B, 4, h, w]
            : null;
        var shape = pipe.LatentFormat.Shape(batch, (int)image.shape[3], (int)image.shape[2]);   // [B, C, h, w]
        long h = shape[2], w = shape[3];
        var noise = InitialNoise.Draw(shape, generator, pipe.Device, variation, pipe.LatentFormat.SpatialFactor);
        var latents = fromNoise ? noise * scheduler.InitNoiseSigma : scheduler.AddNoise(imageLatents!, noise, timesteps[0]);

        var maskedImage = image * mask.lt(0.5);                                 // masked pixels → 0 (mid-grey)
        var maskedLatents = pipe.EncodeImage(maskedImage, generator).expand(batch, -1, -1, -1);
        var latentMask = F.interpolate(mask, [h, w], mode: InterpolationMode.Nearest).expand(batch, -1, -1, -1); // [B, 1, h, w]

        IStepHook hook = legacy
            ? new LegacyBlend(scheduler, imageLatents!.MoveToOuterDisposeScope(), noise.MoveToOuterDisposeScope(), latentMask.MoveToOuterDisposeScope())
            : new MaskChannels(Duplicate(latentMask, guided).MoveToOuterDisposeScope(), Duplicate(maskedLatents, guided).MoveToOuterDisposeScope());
        return new DenoisingStart(latents.MoveToOuterDisposeScope(), timesteps, hook);
    }

    static Tensor Duplicate(Tensor t, bool guided) => guided ? cat([t, t], 0) : t.contiguous();

    /// <summary>9-channel UNets: input = [scaled latents, mask, masked-image latents] (mask and latents not scaled).</summary>
    sealed class MaskChannels(Tensor mask, Tensor maskedLatents) : IStepHook, IDisposable
    {
        public Tensor ExtendModelInput(Tensor scaledInput) => cat([scaledInput, mask, maskedLatents], 1); // [(2)B, 9, h, w]

        public void Dispose()
        {
            mask.Dispose();
            maskedLatents.Dispose();
        }
    }

    /// <summary>4-channel UNets: latents = (1 − m)·x₀ noised to the next timestep (clean after the last) + m·latents.</summary>
    sealed class LegacyBlend(IScheduler scheduler, Tensor imageLatents, Tensor noise, Tensor mask) : IStepHook, IDisposable
    {
        public Tensor AfterStep(int index, IReadOnlyList<float> timesteps, Tensor latents)
        {
            using var scope = NewDisposeScope();
            var original = index < timesteps.Count - 1 ? scheduler.AddNoise(imageLatents, noise, timesteps[index + 1]) : imageLatents;
            return ((1 - mask) * original + mask * latents).MoveToOuterDisposeScope();
        }

        public void Dispose()
        {
            imageLatents.Dispose();
            noise.Dispose();
            mask.Dispose();
        }
    }
}
