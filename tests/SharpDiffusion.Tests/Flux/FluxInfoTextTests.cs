using SharpDiffusion.Pipelines;

namespace SharpDiffusion.Tests.Flux;

/// <summary>
/// The library's infotext for Flux, as Forge writes it (so `generate` and the server agree): "CFG scale: 1" (Flux runs
/// without classifier-free guidance), then for dev its embedded guidance as "Distilled CFG Scale"; schnell, whose guidance
/// is ignored, writes none. An SD model keeps its own CFG scale and no distilled entry.
/// </summary>
public class FluxInfoTextTests
{
    static string InfoText(string modelDir, double guidance)
    {
        using var pipeline = StableDiffusionPipeline.Load(modelDir);
        var options = new GenerationOptions { Prompts = ["a red house"], NumInferenceSteps = 1, Width = 64, Height = 64, Seed = 3, GuidanceScale = guidance };
        using var result = pipeline.Generate(options);
        return ImageOutput.InfoTextFor(options, result, result.Images[0], pipeline.ModelName).Split('\n')[^1];
    }

    [Fact]
    public void Dev_writes_cfg_scale_1_then_the_distilled_cfg_scale()
    {
        string info = InfoText(FluxGolden.ModelDir("tiny-flux-dev"), guidance: 2.5);
        Assert.Contains(", CFG scale: 1, Distilled CFG Scale: 2.5, Seed: 3, Size: 64x64, ", info);
    }

    [Fact]
    public void Schnell_writes_cfg_scale_1_and_no_distilled_scale()
    {
        string info = InfoText(FluxGolden.ModelDir("tiny-flux-schnell"), guidance: 2.5);
        Assert.Contains(", CFG scale: 1, Seed: 3, ", info);
        Assert.DoesNotContain("Distilled", info);
    }

    [Fact]
    public void A_unet_model_keeps_its_cfg_scale()
    {
        string info = InfoText(Golden.Path("models", "tiny-sd"), guidance: 7.5);
        Assert.Contains(", CFG scale: 7.5, Seed: 3, ", info);
        Assert.DoesNotContain("Distilled", info);
    }
}
