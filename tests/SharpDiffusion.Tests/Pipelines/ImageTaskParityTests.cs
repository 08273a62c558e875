using SharpDiffusion.Imaging;
using SharpDiffusion.Pipelines;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Pipelines;

/// <summary>golden/img2img and golden/inpaint: StableDiffusionImg2ImgPipeline and StableDiffusionInpaintPipeline runs
/// of diffusers 0.25 (both models, every sampler recorded), reproduced through the shared denoising core.</summary>
public class ImageTaskParityTests(ITestOutputHelper output)
{
    public static IEnumerable<object[]> Img2ImgCases() =>
        GoldenManifest.Files("img2img/", ".safetensors").Select(f => new object[] { f });

    public static IEnumerable<object[]> InpaintCases() =>
        GoldenManifest.Files("inpaint/", ".safetensors").Select(f => new object[] { f });

    static readonly Lazy<RgbImage> Img2ImgInit = new(() => ImageFile.Load(Golden.Path("img2img", "init_64x64.png")));
    static readonly Lazy<RgbImage> InpaintInit = new(() => ImageFile.Load(Golden.Path("inpaint", "init_64x64.png")));
    static readonly Lazy<RgbImage> InpaintMask = new(() => ImageFile.Load(Golden.Path("inpaint", "mask_64x64.png")));

    static GenerationOptions Options(string file, RgbImage image, RgbImage? mask)
    {
        var info = GoldenManifest.Info(file);
        return PipelineParityTests.Options(info) with
        {
            Image = image,
            MaskImage = mask,
            Strength = info.GetProperty("kwargs").GetProperty("strength").GetDouble(),
        };
    }

    [Theory]
    [MemberData(nameof(Img2ImgCases))]
    public void Img2img_matches_diffusers(string file)
    {
        var golden = Golden.Load(file.Split('/'));
        var options = Options(file, Img2ImgInit.Value, null);
        var pipeline = PipelineParityTests.Pipeline(GoldenManifest.Info(file).GetProperty("model").GetString()!);

        using (var _ = inference_mode())
        using (var generator = new Generator(42))
        using (var image = ImageInputs.ToTensor(Img2ImgInit.Value))
        using (var clean = pipeline.EncodeImage(image, generator))
        {
            Golden.AssertClose(image, golden["vae_encode_0_input"], abs: 0, rel: 0, what: "preprocessed image");
            Golden.AssertClose(clean, golden["init_latents_clean"], what: "init_latents_clean (sampled posterior)");
        }
        RunAndCompare(file, golden, pipeline, options);
    }

    [Theory]
    [MemberData(nameof(InpaintCases))]
    public void Inpainting_matches_diffusers(string file)
    {
        var golden = Golden.Load(file.Split('/'));
        var options = Options(file, InpaintInit.Value, InpaintMask.Value);
        var pipeline = PipelineParityTests.Pipeline(GoldenManifest.Info(file).GetProperty("model").GetString()!);
        RunAndCompare(file, golden, pipeline, options);
    }

    void RunAndCompare(string file, Dictionary<string, Tensor> golden, StableDiffusionPipeline pipeline, GenerationOptions options)
    {
        var expectedTimesteps = golden["timesteps_used"].to(ScalarType.Float32).data<float>().ToArray();
        var scheduler = pipeline.CreateScheduler(options.Scheduler, options.SchedulerOptions);
        scheduler.SetTimesteps(options.NumInferenceSteps);
        Assert.Equal(expectedTimesteps, ImageToImage.CutTimesteps(scheduler, options.NumInferenceSteps, options.EffectiveStrength));
        (scheduler as IDisposable)?.Dispose();

        Assert.Equal(expectedTimesteps.Length, options.DenoisingSteps);
        output.WriteLine($"{file}: {PipelineParityTests.GenerateAndCompare(pipeline, options, golden)}");
    }
}
