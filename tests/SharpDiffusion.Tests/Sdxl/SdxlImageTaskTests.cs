using SharpDiffusion.Imaging;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Tests.Pipelines;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Sdxl;

/// <summary>img2img and inpainting on SDXL come from the shared core with SDXL's conditioning (diffusers' SDXL img2img and
/// inpaint pipelines use the base model's time ids unchanged). No golden exists for them: these check what follows from
/// the math — strength cuts the schedule, and what inpainting keeps is kept.</summary>
public class SdxlImageTaskTests
{
    static readonly RgbImage Init = ImageFile.Load(Golden.Path("inpaint", "init_64x64.png"));
    static readonly RgbImage Mask = ImageFile.Load(Golden.Path("inpaint", "mask_64x64.png"));

    [Fact]
    public void Img2ImgRunsTheLastStepsOfTheSchedule()
    {
        var pipeline = PipelineParityTests.Pipeline("models/tiny-sdxl");
        int steps = 0;
        using var result = pipeline.Generate(new GenerationOptions
        {
            Prompts = ["a red bicycle"], Image = Init, Strength = 0.5, NumInferenceSteps = 10, Seed = 1,
        }, onStepEnd: (_, _) => steps++);
        Assert.Equal(5, steps);
        Assert.Equal((64, 64), (result.Width, result.Height));
    }

    [Fact]
    public void InpaintingWithPasteBackKeepsEveryUnmaskedPixel()
    {
        var pipeline = PipelineParityTests.Pipeline("models/tiny-sdxl");
        using var result = pipeline.Generate(new GenerationOptions
        {
            Prompts = ["a red bicycle"], Image = Init, MaskImage = Mask, NumInferenceSteps = 6, Seed = 2, PasteOriginal = true,
        });
        var image = result.Images[0].Rgb;
        var mask = Mask.Luma();
        int kept = 0, changed = 0;
        for (int p = 0; p < mask.Length; p++)
        {
            bool same = image[3 * p] == Init.Rgb[3 * p] && image[3 * p + 1] == Init.Rgb[3 * p + 1] && image[3 * p + 2] == Init.Rgb[3 * p + 2];
            if (mask[p] == 0) { Assert.True(same, $"pixel {p} outside the mask changed"); kept++; }
            else if (mask[p] == 255 && !same) changed++;
        }
        Assert.True(kept > 0 && changed > 0, $"{kept} kept, {changed} repainted");
    }
}
