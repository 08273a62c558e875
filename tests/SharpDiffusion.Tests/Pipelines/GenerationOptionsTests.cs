using SharpDiffusion.Imaging;
using SharpDiffusion.Pipelines;

namespace SharpDiffusion.Tests.Pipelines;

/// <summary>Validation that needs no model: one-line messages that name the value and the fix.</summary>
public class GenerationOptionsTests
{
    static readonly RgbImage Picture = new(64, 64, new byte[64 * 64 * 3]);
    static readonly GenerationOptions Valid = new() { Prompts = ["a cat"], NumInferenceSteps = 20 };

    public static IEnumerable<object[]> Invalid() =>
    [
        [Valid with { Prompts = [] }, "At least one prompt"],
        [Valid with { Width = 100 }, "multiple of 8"],
        [Valid with { Height = 100_000 }, "up to 8192"],
        [Valid with { NumInferenceSteps = 0 }, "at least 1; got 0"],
        [Valid with { NumImagesPerPrompt = 500 }, "more than 128"],
        [Valid with { GuidanceScale = double.NaN }, "finite"],
        [Valid with { GuidanceRescale = 2 }, "between 0 and 1; got 2"],
        [Valid with { Scheduler = "warp drive" }, "Unknown scheduler 'warp drive'"],
        [Valid with { ClipSkip = 0 }, "Clip skip must be at least 1"],
        [Valid with { MaskImage = Picture }, "A mask needs an image"],
        [Valid with { Image = Picture, Strength = 1.01 }, "Strength must be between 0 and 1; got 1.01"],
        [Valid with { Image = Picture, Strength = double.NaN }, "Strength must be between 0 and 1"],
        [Valid with { Image = Picture, Strength = 0.02 }, "raise the strength to at least 0.05 or use more steps"],
        [Valid with { Image = Picture, Strength = 0 }, "runs no denoising step"],
        [Valid with { Image = Picture, MaskImage = Picture, MaskBlur = 1000 }, "Mask blur must be between 0 and 256"],
        [Valid with { NegativePrompts = ["a", "b"] }, "one per prompt (1); got 2"],
    ];

    [Theory]
    [MemberData(nameof(Invalid))]
    public void Invalid_options_fail_in_one_line(GenerationOptions options, string message)
    {
        var e = Assert.Throws<ArgumentException>(options.Validate);
        Assert.Contains(message, e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }

    [Fact]
    public void The_task_and_its_strength_follow_from_the_inputs()
    {
        Valid.Validate();
        Assert.Equal((GenerationTask.TextToImage, 1.0, 20), (Valid.Task, Valid.EffectiveStrength, Valid.DenoisingSteps));
        var img2img = Valid with { Image = Picture };
        Assert.Equal((GenerationTask.ImageToImage, 0.75, 15), (img2img.Task, img2img.EffectiveStrength, img2img.DenoisingSteps));
        var inpaint = img2img with { MaskImage = Picture };
        Assert.Equal((GenerationTask.Inpainting, 1.0, 20), (inpaint.Task, inpaint.EffectiveStrength, inpaint.DenoisingSteps));
        var half = img2img with { Strength = 0.5 };
        Assert.Equal(10, half.DenoisingSteps); // img2img at strength 0.5 runs half the UNet steps
    }

    [Fact]
    public void The_working_size_is_the_images_own_rounded_down_or_the_given_one_keeping_the_aspect()
    {
        var image = new RgbImage(100, 70, new byte[100 * 70 * 3]);
        Assert.Equal((96, 64), ImageInputs.WorkingSize(image, null, null, 8));
        Assert.Equal((200, 136), ImageInputs.WorkingSize(image, 200, null, 8)); // 140 → 136
        Assert.Equal((48, 48), ImageInputs.WorkingSize(image, 48, 48, 8));
        var e = Assert.Throws<ArgumentException>(() => ImageInputs.WorkingSize(new RgbImage(5, 5, new byte[75]), null, null, 8));
        Assert.Contains("too small", e.Message);
    }
}
