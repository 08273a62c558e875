using System.Text.Json;
using SharpDiffusion.Conditioning;
using SharpDiffusion.Families.StableDiffusion;
using SharpDiffusion.Imaging;
using SharpDiffusion.Loading;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Tests.Pipelines;
using SharpDiffusion.Tests.Sd3;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Refiner;

/// <summary>
/// The SDXL refiner against golden v3 `refiner/tiny-sdxl`: `../models/tiny-sdxl` with denoising_end 0.8 and
/// output_type "latent", then `models/tiny-sdxl-refiner` (bigG only, requires_aesthetics_score) on those latents with
/// denoising_start 0.8 (aesthetic 6 / 2.5, a new generator of the same seed); and the refiner as img2img (strength 0.3).
/// Every step of both passes and the picture are compared.
/// </summary>
public class SdxlRefinerTests(ITestOutputHelper output)
{
    static readonly string[] Folder = ["v3", "refiner", "tiny-sdxl"];
    const string BaseCase = "base_denoising_end0.8_seed14";
    const string RefinerCase = "refiner_denoising_start0.8_seed14";
    const string Img2ImgCase = "refiner_img2img_s0.3_seed16";

    internal static StableDiffusionPipeline Base => PipelineParityTests.Pipeline("models/tiny-sdxl");
    internal static StableDiffusionPipeline Refiner => PipelineParityTests.Pipeline("v3/models/tiny-sdxl-refiner");

    static JsonElement Info(string name)
    {
        using var file = SafetensorsFile.Open(Golden.Path([.. Folder, name + ".safetensors"]));
        return JsonDocument.Parse(file.Metadata["info"]).RootElement.Clone();
    }

    static Dictionary<string, Tensor> Load(string name) => Golden.Load([.. Folder, name + ".safetensors"]);

    /// <summary>The call the reference made (the refiner cases give no size: the latents' or the picture's).</summary>
    static GenerationOptions Options(JsonElement info)
    {
        var kwargs = info.GetProperty("kwargs");
        var options = GoldenManifest.Call(info) with { Scheduler = info.GetProperty("scheduler").GetProperty("class").GetString() };
        if (kwargs.TryGetProperty("aesthetic_score", out var a)) options = options with { AestheticScore = a.GetDouble() };
        if (kwargs.TryGetProperty("negative_aesthetic_score", out var na)) options = options with { NegativeAestheticScore = na.GetDouble() };
        return options;
    }

    static (double ImageDiff, int Levels) CompareImage(Tensor imageFloat, Dictionary<string, Tensor> golden)
    {
        double imageDiff = Golden.MaxAbsDiff(imageFloat, golden["image_float"]);
        Assert.True(imageDiff <= 1e-3, $"image_float max |diff| {imageDiff:E3}");
        using var bytes = ImageTensors.ToUInt8(imageFloat);
        using var levels = (bytes.to(ScalarType.Int32) - golden["image_uint8"].to(ScalarType.Int32)).abs();
        int worst = levels.max().item<int>();
        Assert.True(worst <= 1, $"uint8 image differs by {worst} levels");
        return (imageDiff, worst);
    }

    [Fact]
    public void A_refiner_folder_loads_as_the_refiner_family_with_bigG_alone()
    {
        var refiner = Refiner;
        Assert.IsType<StableDiffusionXLRefinerFamily>(refiner.Family);
        Assert.True(refiner.IsXL);
        var conditioner = Assert.IsType<SdxlTextConditioner>(refiner.Conditioner);
        Assert.True(conditioner.IsRefiner);
        Assert.True(conditioner.RequiresAestheticsScore);
        Assert.Single(conditioner.Encoders);
        Assert.Equal(refiner.Unet.Config.ProjectionClassEmbeddingsInputDim,
            conditioner.TextEncoder2.Config.ProjectionDim + conditioner.TimeIdCount * refiner.Unet.Config.AdditionTimeEmbedDim);
    }

    [Fact]
    public void Refiner_conditioning_is_bigG_alone_with_aesthetic_score_time_ids()
    {
        var info = Info(RefinerCase);
        var golden = Load(RefinerCase);
        var options = Options(info);
        using var _ = inference_mode();
        using var latents = golden["latents_steps"][0];
        int size = (int)latents.shape[^1] * Refiner.LatentFormat.SpatialFactor;
        var batch = new PromptBatch(options, options.Prompts, [options.NegativePromptFor(0)], Guided: true, size, size);
        using var conditioning = Refiner.Conditioner.Encode(batch, new List<string>());
        Golden.AssertClose(conditioning.EncoderHiddenStates, golden["denoiser_call0_encoder_hidden_states"], what: "encoder_hidden_states");
        Golden.AssertClose(conditioning.EncoderHiddenStates.narrow(0, 1, 1), golden["prompt_embeds"], what: "prompt_embeds");
        Golden.AssertClose(conditioning.EncoderHiddenStates.narrow(0, 0, 1), golden["negative_prompt_embeds"], what: "negative_prompt_embeds");
        Golden.AssertClose(conditioning.Pooled!.narrow(0, 1, 1), golden["pooled_prompt_embeds"], what: "pooled_prompt_embeds");
        Golden.AssertClose(conditioning.Pooled!.narrow(0, 0, 1), golden["negative_pooled_prompt_embeds"], what: "negative_pooled_prompt_embeds");
        // diffusers' _get_add_time_ids with requires_aesthetics_score: original size + crop + (negative_)aesthetic_score.
        var kwargs = info.GetProperty("kwargs");
        float[] negative = [size, size, 0, 0, (float)kwargs.GetProperty("negative_aesthetic_score").GetDouble()];
        float[] positive = [size, size, 0, 0, (float)kwargs.GetProperty("aesthetic_score").GetDouble()];
        Assert.Equal(negative.Concat(positive).ToArray(), conditioning.TimeIds!.data<float>().ToArray());
    }

    [Fact]
    public void Base_then_refiner_at_0_8_matches_diffusers_step_by_step()
    {
        var baseInfo = Info(BaseCase);
        var first = Load(BaseCase);
        var second = Load(RefinerCase);
        var refinerKwargs = Info(RefinerCase).GetProperty("kwargs");
        double switchAt = baseInfo.GetProperty("kwargs").GetProperty("denoising_end").GetDouble();
        Assert.Equal(switchAt, refinerKwargs.GetProperty("denoising_start").GetDouble());
        var options = Options(baseInfo) with
        {
            Refiner = new RefinerOptions { Refiner = Refiner, SwitchAt = switchAt },
            AestheticScore = refinerKwargs.GetProperty("aesthetic_score").GetDouble(),
            NegativeAestheticScore = refinerKwargs.GetProperty("negative_aesthetic_score").GetDouble(),
        };
        Assert.Equal(options.NumInferenceSteps, refinerKwargs.GetProperty("num_inference_steps").GetInt32());
        Assert.Equal(options.GuidanceScale, refinerKwargs.GetProperty("guidance_scale").GetDouble());

        var firstSteps = first["latents_steps"];
        var secondSteps = second["latents_steps"];
        int call = 0;
        double worst = 0;
        using var result = Base.Generate(options, onStepEnd: (i, latents) =>
        {
            bool inFirst = call++ < firstSteps.shape[0];
            var expected = inFirst ? firstSteps[i] : secondSteps[i];
            double diff = Golden.AssertClose(latents, expected, rel: 1e-3, abs: 1e-4, what: $"{(inFirst ? "base" : "refiner")} pass, latents after step {i}");
            worst = Math.Max(worst, diff / Golden.MaxAbs(expected));
        });
        Assert.Equal(firstSteps.shape[0] + secondSteps.shape[0], call);
        var (imageDiff, levels) = CompareImage(result.ImageFloat, second);
        string info = ImageOutput.InfoTextFor(options, result, result.Images[0], Base.ModelName);
        Assert.Contains($"Refiner: {Refiner.ModelName}, Refiner switch at: {switchAt.ToString(System.Globalization.CultureInfo.InvariantCulture)}", info);
        output.WriteLine($"{call} steps ({firstSteps.shape[0]} base + {secondSteps.shape[0]} refiner), latents max rel diff {worst:E2}, " +
            $"image_float max |diff| {imageDiff:E2}, uint8 max {levels} level(s)");
    }

    [Fact]
    public void Refiner_img2img_from_the_first_unet_call_matches_diffusers()
    {
        var info = Info(Img2ImgCase);
        var golden = Load(Img2ImgCase);
        var options = Options(info) with { Strength = info.GetProperty("kwargs").GetProperty("strength").GetDouble() };
        var pipeline = Refiner;
        using var _ = inference_mode();

        var scheduler = pipeline.CreateScheduler(options.Scheduler);
        var sample = golden["denoiser_call0_sample"].narrow(0, 0, 1);                      // [1, 4, h, w], scaled for the UNet
        pipeline.Denoiser.SetTimesteps(scheduler, options.NumInferenceSteps, sample.shape);
        var timesteps = ImageToImage.CutTimesteps(scheduler, options.NumInferenceSteps, options.Strength!.Value);
        Assert.Equal(golden["denoiser_timesteps"].data<float>().ToArray(), timesteps.ToArray());
        // Euler's scale_model_input divides by √(σ² + 1): undo it for the noised latents the loop starts from.
        float sigma = golden["scheduler_sigmas"].data<float>()[scheduler.Timesteps.Count - timesteps.Count];
        using var start = sample * MathF.Sqrt(sigma * sigma + 1);

        int size = (int)sample.shape[^1] * pipeline.LatentFormat.SpatialFactor;
        var batch = new PromptBatch(options, options.Prompts, [options.NegativePromptFor(0)], Guided: true, size, size);
        using var conditioning = pipeline.Conditioner.Encode(batch, new List<string>());
        Golden.AssertClose(conditioning.EncoderHiddenStates, golden["denoiser_call0_encoder_hidden_states"], what: "encoder_hidden_states");

        using var generator = new Generator((ulong)options.Seed!.Value);
        var plan = new DenoisingPlan(scheduler, timesteps, conditioning, new GuidanceSettings(options.GuidanceScale), generator);
        var latentSteps = golden["latents_steps"];
        double worst = 0;
        using var use = pipeline.Denoiser.Weights.Use();
        using var run = pipeline.Denoiser.Start(options);
        using var latents = new DenoisingLoop(pipeline.Denoiser, run).Run(start.clone(), plan, (i, l) =>
        {
            double diff = Golden.AssertClose(l, latentSteps[i], rel: 1e-3, abs: 1e-4, what: $"latents after step {i}");
            worst = Math.Max(worst, diff / Golden.MaxAbs(latentSteps[i]));
        });
        using var image = pipeline.DecodeLatents(latents);
        var (imageDiff, levels) = CompareImage(image, golden);
        output.WriteLine($"{timesteps.Count} steps, latents max rel diff {worst:E2}, image_float max |diff| {imageDiff:E2}, uint8 max {levels} level(s)");
    }

    [Fact]
    public void Refiner_img2img_noises_the_vae_sample_at_the_first_kept_timestep()
    {
        var info = Info(Img2ImgCase);
        var golden = Load(Img2ImgCase);
        var (pipeline, recorder) = Recording.Wrap(Refiner);
        var picture = Stripes(64, 64, period: 16);          // the case's own picture is not shipped (diagonal stripes)
        var options = Options(info) with { Strength = info.GetProperty("kwargs").GetProperty("strength").GetDouble(), Image = picture };
        using var _ = inference_mode();

        using var result = pipeline.Generate(options);
        Assert.Equal(golden["denoiser_timesteps"].data<float>().ToArray(), recorder.Timesteps.ToArray());
        // diffusers: x₀ = scaling_factor · posterior sample (the generator's first draw), x_t = x₀ + σ·ε (ε = rng_0, the next
        // draw), and the UNet sees x_t / √(σ² + 1).
        using var generator = new Generator((ulong)options.Seed!.Value);
        using var clean = pipeline.EncodeImage(ImageInputs.ToTensor(picture), generator);
        var sigmas = golden["scheduler_sigmas"].data<float>().ToArray();
        float sigma = sigmas[sigmas.Length - 1 - recorder.Timesteps.Count];
        using var expected = (clean + sigma * golden["rng_0"]) / MathF.Sqrt(sigma * sigma + 1);
        double diff = Golden.AssertClose(recorder.First!.HiddenStates.narrow(0, 0, 1), expected, what: "first UNet input");
        output.WriteLine($"first UNet input max |diff| {diff:E3} (σ = {sigma})");
    }

    [Fact]
    public void With_low_memory_the_base_leaves_before_the_refiner_is_read()
    {
        var low = new LoadOptions { LowMemory = true };
        using var pipe = StableDiffusionPipeline.Load(Golden.Path("models", "tiny-sdxl"), low);
        using var refiner = StableDiffusionPipeline.Load(Golden.Path("v3", "models", "tiny-sdxl-refiner"), low);
        var options = new GenerationOptions
        {
            Prompts = ["a mountain lake"], Width = 64, Height = 64, NumInferenceSteps = 5, Seed = 3,
            Refiner = new RefinerOptions { Refiner = refiner, SwitchAt = 0.6 },
        };
        var seen = new List<(bool Base, bool Refiner)>();
        using var result = pipe.Generate(options, onStepEnd: (_, _) =>
            seen.Add((pipe.Denoiser.Weights.Resident, refiner.Denoiser.Weights.Resident)));
        Assert.Equal(5, seen.Count);
        Assert.Contains((true, false), seen);                // the base's steps: the refiner not read yet
        Assert.Contains((false, true), seen);                // the refiner's steps: the base freed
        Assert.DoesNotContain((true, true), seen);
        Assert.Single(result.Images);
    }

    [Fact]
    public void A_refiner_for_a_model_that_is_not_SDXL_is_refused_in_one_line()
    {
        var sd15 = PipelineParityTests.Pipeline("models/small-sd15");
        var options = new GenerationOptions { Prompts = ["x"], Width = 64, Height = 64, NumInferenceSteps = 4, Refiner = new RefinerOptions { Refiner = Refiner } };
        var e = Assert.Throws<ArgumentException>(() => sd15.Generate(options));
        Assert.Contains("SDXL base models", e.Message);
        Assert.DoesNotContain("\n", e.Message);
        e = Assert.Throws<ArgumentException>(() => Refiner.Generate(options));
        Assert.Contains("itself an SDXL refiner", e.Message);
        e = Assert.Throws<ArgumentException>(() => Base.Generate(options with { Refiner = new RefinerOptions { Refiner = Base } }));
        Assert.Contains("not an SDXL refiner", e.Message);
        e = Assert.Throws<ArgumentException>(() => Base.Generate(options with { Refiner = new RefinerOptions { Refiner = Refiner, SwitchAt = 1 } }));
        Assert.Contains("refiner switch must be between 0 and 1", e.Message);
    }

    /// <summary>Black and white diagonal stripes, <paramref name="period"/> pixels per pair.</summary>
    static RgbImage Stripes(int width, int height, int period)
    {
        var rgb = new byte[width * height * 3];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                rgb.AsSpan((y * width + x) * 3, 3).Fill((x + y) % period < period / 2 ? (byte)255 : (byte)0);
        return new RgbImage(width, height, rgb);
    }
}

/// <summary><see cref="DenoisingRange"/>: denoising_end and denoising_start split one schedule between two experts.</summary>
public class DenoisingRangeTests
{
    [Theory]
    [InlineData(10, 0.8)]
    [InlineData(25, 0.7)]
    [InlineData(7, 0.5)]
    public void The_base_and_the_refiner_share_out_every_timestep_of_a_first_order_schedule(int steps, double switchAt)
    {
        var scheduler = SdxlRefinerTests.Base.CreateScheduler("EulerDiscreteScheduler");
        scheduler.SetTimesteps(steps);
        var first = DenoisingRange.Until(scheduler.Timesteps, scheduler, switchAt);
        var second = DenoisingRange.From(scheduler, switchAt);
        Assert.Equal(scheduler.Timesteps, first.Concat(second));
        Assert.NotEmpty(first);
        Assert.NotEmpty(second);
    }

    [Fact]
    public void A_second_order_refiner_pass_ends_on_a_whole_step()
    {
        // diffusers' get_timesteps: with order 2 an even count of timesteps below the cutoff gets one more, so the pass
        // starts on the second evaluation of a Heun step and ends on a whole one.
        var scheduler = SdxlRefinerTests.Base.CreateScheduler("HeunDiscreteScheduler");
        scheduler.SetTimesteps(10);
        var second = DenoisingRange.From(scheduler, 0.8);
        Assert.Equal(2, scheduler.Order);
        Assert.Equal(1, second.Count % 2);
        Assert.Equal(scheduler.Timesteps.TakeLast(second.Count), second);
    }
}
