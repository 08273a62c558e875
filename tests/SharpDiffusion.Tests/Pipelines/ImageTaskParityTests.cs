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

        var latentSteps = golden["latents_steps"];
        double worstLatent = 0;
        int steps = 0;
        using var result = pipeline.Generate(options, onStepEnd: (i, latents) =>
        {
            steps++;
            double diff = Golden.AssertClose(latents, latentSteps[i], rel: 1e-3, abs: 1e-4, what: $"latents after step {i}");
            worstLatent = Math.Max(worstLatent, diff / Golden.MaxAbs(latentSteps[i]));
        });

        Assert.Equal(expectedTimesteps.Length, steps);
        Assert.Equal(latentSteps.shape[0], steps);
        Assert.Equal(options.DenoisingSteps, steps);
        double imageDiff = Golden.MaxAbsDiff(result.ImageFloat, golden["image_float"]);
        Assert.True(imageDiff <= 1e-3, $"image_float max |diff| {imageDiff:E3}");

        using var bytes = StableDiffusionPipeline.ToUInt8(result.ImageFloat);
        using var byteDiff = (bytes.to(ScalarType.Int32) - golden["image_uint8"].to(ScalarType.Int32)).abs();
        int maxLevel = byteDiff.max().item<int>();
        long differing = byteDiff.gt(0).sum().item<long>();
        Assert.True(maxLevel <= 1, $"uint8 image differs by {maxLevel} levels");
        output.WriteLine($"{file}: {steps} steps, latents max rel diff {worstLatent:E2}, image_float max |diff| {imageDiff:E2}, uint8 values differing {differing} (max {maxLevel})");
    }
}
