using SharpDiffusion.Imaging;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpDiffusion.Pipelines;

/// <summary>
/// AUTOMATIC1111's hires fix as two passes of the same pipeline (<see cref="HiresFixOptions"/>): text-to-image at the
/// given size, the result upscaled, then img2img from those latents at the target size with a new generator of the same
/// seed. Latent upscalers interpolate the first pass's latents (no decode in between); picture upscalers decode them,
/// resize the pictures and encode them again (posterior samples from a generator of the same seed).
/// </summary>
public static class HiresFix
{
    public static GenerationResult Run(StableDiffusionPipeline pipe, GenerationOptions options, IProgress<GenerationProgress>? progress,
        Action<int, Tensor>? onStepEnd, CancellationToken cancellation, Action<int, Tensor>? onDenoised)
    {
        options.Validate(); // the hires options too: the passes below validate options without them
        var hires = options.Hires!;
        var firstOptions = options with { Hires = null, LatentsOnly = hires.IsLatent };
        var (width, height) = pipe.Validate(firstOptions);
        var (targetWidth, targetHeight, cropX, cropY) = hires.Target(width, height);
        int f = pipe.LatentFormat.SpatialFactor, multiple = pipe.SizeMultiple;
        // A1111 sizes the latents target // 8, then crops a resize of another aspect ratio at the centre.
        int finalWidth = (targetWidth - cropX) / multiple * multiple, finalHeight = (targetHeight - cropY) / multiple * multiple;
        if (finalWidth < width || finalHeight < height || finalWidth > GenerationOptions.MaxSide || finalHeight > GenerationOptions.MaxSide)
            throw new ArgumentException($"The hires fix would draw {width}x{height} at {finalWidth}x{finalHeight}; it needs a larger size up to " +
                $"{GenerationOptions.MaxSide} (a scale of at least 1, a resize at least the first pass's size).");
        var secondBase = options with
        {
            Hires = null,
            Width = null,
            Height = null,
            Latents = null,
            Strength = hires.Strength,
            NumInferenceSteps = hires.Steps > 0 ? hires.Steps : options.NumInferenceSteps,
            Scheduler = hires.Scheduler ?? options.Scheduler,
            Prompts = hires.Prompt is { Length: > 0 } p ? Enumerable.Repeat(p, options.PromptCount).ToList() : options.Prompts,
            NegativePrompts = hires.NegativePrompt is { } n ? [n] : options.NegativePrompts,
            GuidanceScale = hires.GuidanceScale ?? options.GuidanceScale,
        };
        if ((int)(secondBase.NumInferenceSteps * hires.Strength) < 1)
            throw new ArgumentException($"Hires strength {hires.Strength} with {secondBase.NumInferenceSteps} steps runs no step of the second pass; raise either.");
        using var memoryCheck = zeros(1, pipe.LatentFormat.Channels, finalHeight / f, finalWidth / f);
        pipe.Validate(secondBase with { ImageLatents = memoryCheck });                          // refused before the first pass

        using var first = pipe.Generate(firstOptions, progress, onStepEnd, cancellation, onDenoised);
        using var upscaled = hires.IsLatent
            ? UpscaleLatents(first.Latents, hires, targetWidth / f, targetHeight / f, finalWidth / f, finalHeight / f)
            : UpscalePictures(pipe, first, hires, targetWidth, targetHeight, finalWidth, finalHeight);
        var second = pipe.Generate(secondBase with { Seed = first.Seed, VariationSeed = first.VariationSeed ?? options.VariationSeed, ImageLatents = upscaled },
            progress, onStepEnd, cancellation, onDenoised);
        return second.WithFirstPass(first);
    }

    /// <summary>[B, C, h, w] → [B, C, h', w'] by the upscaler's torch interpolation, cropped at the centre to the final size.</summary>
    static Tensor UpscaleLatents(Tensor latents, HiresFixOptions hires, int width, int height, int finalWidth, int finalHeight)
    {
        var (mode, antialias) = HiresFixOptions.LatentUpscalers[hires.Upscaler];
        using var scaled = F.interpolate(latents, [height, width], mode: mode,
            align_corners: mode is InterpolationMode.Bilinear or InterpolationMode.Bicubic ? false : null, antialias: antialias);
        return CropCentre(scaled, finalWidth, finalHeight).contiguous();
    }

    /// <summary>A1111's truncation: (excess)//2 off the top/left, the rest off the bottom/right.</summary>
    static Tensor CropCentre(Tensor x, long width, long height)
    {
        long dy = x.shape[2] - height, dx = x.shape[3] - width;
        return x.narrow(2, dy / 2, height).narrow(3, dx / 2, width);
    }

    static Tensor UpscalePictures(StableDiffusionPipeline pipe, GenerationResult first, HiresFixOptions hires, int width, int height,
        int finalWidth, int finalHeight)
    {
        using var scope = NewDisposeScope();
        using var generator = new Generator((ulong)first.Seed);
        using var model = hires.ModelPath is { } modelPath ? Models.Upscalers.Upscaler.Load(modelPath) : null;
        var rows = first.Images.Select(image =>
        {
            var picture = new RgbImage(image.Width, image.Height, image.Rgb);
            // A1111's resize_image with an ESRGAN: upscale by the larger ratio, then Lanczos to the exact size.
            if (model is not null)
                picture = model.Upscale(picture, Math.Max((double)width / picture.Width, (double)height / picture.Height));
            picture = hires.Upscaler.Equals("Nearest", StringComparison.OrdinalIgnoreCase)
                ? PictureResize.Nearest(picture, width, height)
                : PictureResize.Lanczos(picture, width, height);
            using var pixels = ImageInputs.ToTensor(picture);                                   // [1, 3, H, W] in [-1, 1]
            using var cropped = CropCentre(pixels, finalWidth, finalHeight).contiguous();
            return pipe.EncodeImage(cropped, generator);
        }).ToList();
        return cat(rows, 0).MoveToOuterDisposeScope();                                         // [B, C, h, w]
    }
}
