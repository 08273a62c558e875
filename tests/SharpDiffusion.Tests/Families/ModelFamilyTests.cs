using SharpDiffusion.Families;
using SharpDiffusion.Families.StableDiffusion;
using SharpDiffusion.Loading;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Tests.Pipelines;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Families;

/// <summary>A model family as data: detection from model_index.json's _class_name, the latent format's map, and the loop's
/// two ways of running guidance (one batched call, or the halves apart) giving diffusers' picture.</summary>
public class ModelFamilyTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("models/tiny-sd", typeof(StableDiffusionFamily))]
    [InlineData("models/tiny-sd2", typeof(StableDiffusionFamily))]
    [InlineData("models/tiny-sd-inpaint", typeof(StableDiffusionFamily))]
    [InlineData("models/tiny-sdxl", typeof(StableDiffusionXLFamily))]
    public void The_family_of_a_folder_comes_from_its_pipeline_class(string model, Type family)
    {
        var folder = DiffusersFolder.Open(Golden.Path(model));
        Assert.IsType(family, ModelFamily.Detect(folder));
        Assert.Contains(folder.ClassName, ModelFamily.Detect(folder).PipelineClasses);
    }

    [Fact]
    public void A_pipeline_class_of_no_family_we_run_is_refused_in_one_line_by_name()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("model_index.json"), """{"_class_name": "KandinskyPipeline", "unet": ["diffusers", "UNet2DConditionModel"]}""");
        var e = Assert.Throws<NotSupportedException>(() => StableDiffusionPipeline.FromPretrained(dir.Path));
        Assert.Contains("KandinskyPipeline", e.Message);
        Assert.Contains("StableDiffusionXLPipeline", e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }

    [Fact]
    public void Single_file_options_on_a_folder_are_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => StableDiffusionPipeline.Load(Golden.Path("models", "tiny-sd"), singleFile: new() { OriginalConfig = "v1-inference.yaml" }));
        Assert.Contains("single-file checkpoint", e.Message);
    }

    /// <summary>The latents the loop holds are (z − shift)·scale of the VAE's z; a patch makes whole tokens the size unit.</summary>
    [Fact]
    public void The_latent_format_maps_vae_samples_with_scale_and_shift_and_back()
    {
        var sd = PipelineParityTests.Pipeline("models/tiny-sd").LatentFormat;
        Assert.Equal(0, sd.ShiftFactor);
        Assert.Equal(PipelineParityTests.Pipeline("models/tiny-sd").Vae.Config.ScalingFactor, sd.ScalingFactor);
        var shifted = sd with { ShiftFactor = 0.0609, PatchSize = 2 };
        using var generator = new Generator(3);
        using var z = randn([1, sd.Channels, 4, 4], generator: generator);
        using var x = shifted.FromVae(z);
        using var expected = (z - 0.0609) * sd.ScalingFactor;
        Golden.AssertClose(x, expected, rel: 0, abs: 1e-6, what: "(z − shift)·scale");
        using var back = shifted.ToVae(x);
        Golden.AssertClose(back, z, rel: 0, abs: 1e-5, what: "x/scale + shift");
        Assert.Equal(8, (sd with { SpatialFactor = 2 }).SizeMultiple);                       // never below diffusers' 8
        Assert.Equal(16, (sd with { SpatialFactor = 8, PatchSize = 2 }).SizeMultiple);       // SD3: 8 pixels per latent, 2×2 patches
        Assert.Equal(new long[] { 2, sd.Channels, 64 / sd.SpatialFactor, 32 / sd.SpatialFactor }, shifted.Shape(2, 32, 64));
    }

    /// <summary>A denoiser that does not batch guidance (as a family may say) gets the uncond and cond halves in two calls;
    /// the picture is diffusers' all the same.</summary>
    [Theory]
    [InlineData("pipelines/tiny-sd/pndm_default_seed42_20steps_g7.5.safetensors")]
    [InlineData("sdxl/pipelines/euler_negative_64x64_seed42_15steps_g5.safetensors")]
    public void Guidance_halves_run_apart_give_the_golden_picture(string file)
    {
        var info = GoldenManifest.Info(file);
        var golden = Golden.Load(file.Split('/'));
        var c = PipelineParityTests.Pipeline(info.GetProperty("model").GetString()!).Components;
        var denoiser = new HalvesApart(c.Denoiser);
        var apart = new ModelComponents
        {
            Family = c.Family, Conditioner = c.Conditioner, Denoiser = denoiser, Vae = c.Vae, SchedulerConfig = c.SchedulerConfig,
        };
        var pipeline = new StableDiffusionPipeline(apart, "halves apart", new LoadOptions()); // shares the cached modules: not disposed
        var options = PipelineParityTests.Options(info);
        var summary = PipelineParityTests.GenerateAndCompare(pipeline, options, golden);
        Assert.True(options.GuidanceScale > 1);
        Assert.Equal(options.PromptCount * options.NumImagesPerPrompt, denoiser.MostRows); // never the 2B rows of a batched call
        output.WriteLine($"{file}, guidance halves apart: {summary}");
    }

    /// <summary>The same network, saying it does not batch guidance, and counting the rows it is given.</summary>
    sealed class HalvesApart(IDenoiser inner) : IDenoiser
    {
        public long MostRows { get; private set; }
        public ComponentWeights Weights => inner.Weights;
        public bool BatchesGuidance => false;
        public long InChannels => inner.InChannels;
        public int DefaultSampleSize => inner.DefaultSampleSize;
        public long FullResolutionChannels => inner.FullResolutionChannels;
        public void Validate(GenerationOptions options) => inner.Validate(options);
        public IDenoiserRun Start(GenerationOptions options) => new Run(this, inner.Start(options));

        sealed class Run(HalvesApart owner, IDenoiserRun run) : IDenoiserRun
        {
            public Tensor Predict(DenoiserInput input)
            {
                Assert.Equal(input.HiddenStates.shape[0], input.Conditioning.BatchSize);
                owner.MostRows = Math.Max(owner.MostRows, input.HiddenStates.shape[0]);
                return run.Predict(input);
            }

            public void Dispose() => run.Dispose();
        }
    }
}
