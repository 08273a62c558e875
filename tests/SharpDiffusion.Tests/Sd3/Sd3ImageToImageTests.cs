using SharpDiffusion.Conditioning;
using SharpDiffusion.Imaging;
using SharpDiffusion.Pipelines;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Sd3;

/// <summary>
/// golden/v3/sd3/&lt;model&gt;/img2img_s0.6_*: StableDiffusion3Img2ImgPipeline. The case does not ship its init picture
/// (a 96×96 checkerboard made by the reference script, whose cell size and colours are not recorded), so the run is
/// checked in two parts: from the first transformer call on (the golden noised latents through our timestep cut, loop,
/// guidance and decode: latents after every step and the images), and how <see cref="StableDiffusionPipeline.Generate"/>
/// makes that first input from a picture (VAE posterior sample, (z − shift)·scale, scale_noise at the cut's first σ with
/// the golden noise draw).
/// </summary>
public class Sd3ImageToImageTests(ITestOutputHelper output)
{
    const string Case = "img2img_s0.6_96x96_seed13_10steps_g5";

    [Theory]
    [InlineData("tiny-sd3")]
    [InlineData("tiny-sd35")]
    public void Img2img_from_the_first_transformer_call_matches_diffusers(string model)
    {
        var info = Sd3Golden.Info(model, Case);
        var golden = Golden.Load(Sd3Golden.File(model, Case));
        var pipeline = Sd3Golden.Pipeline(model, withoutT5: false);
        var options = Sd3Golden.Options(info);
        using var _ = inference_mode();

        var scheduler = pipeline.CreateScheduler(null);
        var start = golden["denoiser_call0_hidden_states"].narrow(0, 0, 1);           // [1, 16, h, w]: the noised image latents
        pipeline.Denoiser.SetTimesteps(scheduler, options.NumInferenceSteps, start.shape);
        var timesteps = ImageToImage.CutTimesteps(scheduler, options.NumInferenceSteps, options.Strength!.Value);
        Assert.Equal(golden["denoiser_timesteps"].data<float>().ToArray(), timesteps.ToArray());

        var batch = new PromptBatch(options, options.Prompts, [options.NegativePromptFor(0)], Guided: true, 96, 96);
        using var conditioning = pipeline.Conditioner.Encode(batch, new List<string>());
        Golden.AssertClose(conditioning.EncoderHiddenStates, golden["denoiser_call0_encoder_hidden_states"], what: "encoder_hidden_states");
        Golden.AssertClose(conditioning.Pooled!, golden["denoiser_call0_pooled_projections"], what: "pooled_projections");

        using var generator = new Generator((ulong)options.Seed!.Value);
        var plan = new DenoisingPlan(scheduler, timesteps, conditioning, new GuidanceSettings(options.GuidanceScale), generator);
        var latentSteps = golden["latents_steps"];
        double worstLatent = 0;
        using var use = pipeline.Denoiser.Weights.Use();
        using var run = pipeline.Denoiser.Start(options);
        using var latents = new DenoisingLoop(pipeline.Denoiser, run).Run(start.clone(), plan, (i, l) =>
        {
            double diff = Golden.AssertClose(l, latentSteps[i], rel: 1e-3, abs: 1e-4, what: $"latents after step {i}");
            worstLatent = Math.Max(worstLatent, diff / Golden.MaxAbs(latentSteps[i]));
        });

        using var image = pipeline.DecodeLatents(latents);
        double imageDiff = Golden.MaxAbsDiff(image, golden["image_float"]);
        Assert.True(imageDiff <= 1e-3, $"image_float max |diff| {imageDiff:E3}");
        using var bytes = ImageTensors.ToUInt8(image);
        using var byteDiff = (bytes.to(ScalarType.Int32) - golden["image_uint8"].to(ScalarType.Int32)).abs();
        int maxLevel = byteDiff.max().item<int>();
        long differing = byteDiff.gt(0).sum().item<long>();
        Assert.True(maxLevel <= 1, $"uint8 image differs by {maxLevel} levels");
        Assert.True(differing <= Math.Max(4, bytes.numel() / 1000), $"{differing} uint8 values differ");
        output.WriteLine($"{model}: {timesteps.Count} steps, latents max rel diff {worstLatent:E2}, image_float max |diff| {imageDiff:E2}, uint8 values differing {differing} (max {maxLevel})");
    }

    [Theory]
    [InlineData("tiny-sd3")]
    [InlineData("tiny-sd35")]
    public void Img2img_noises_the_scaled_vae_sample_at_the_first_kept_sigma(string model)
    {
        var info = Sd3Golden.Info(model, Case);
        var golden = Golden.Load(Sd3Golden.File(model, Case));
        var (pipeline, recorder) = Recording.Wrap(Sd3Golden.Pipeline(model, withoutT5: false));
        var picture = Checkerboard(96, 96, cell: 12);
        var options = Sd3Golden.Options(info) with { Image = picture };
        using var _ = inference_mode();

        using var result = pipeline.Generate(options);
        Assert.Equal(golden["denoiser_timesteps"].data<float>().ToArray(), recorder.Timesteps.ToArray());

        // diffusers: z ~ posterior (first draw of the generator), x₀ = (z − shift_factor)·scaling_factor,
        // then scale_noise: σ·ε + (1 − σ)·x₀ with ε the next draw (golden rng_0) and σ the first kept sigma.
        var vae = pipeline.Vae;
        using var generator = new Generator((ulong)options.Seed!.Value);
        using var posterior = vae.Encode(ImageInputs.ToTensor(picture));
        var z = posterior.Sample(generator);
        var x0 = (z - vae.Config.ShiftFactor) * vae.Config.ScalingFactor;
        float sigma = golden["scheduler_sigmas"].data<float>()[golden["scheduler_sigmas"].shape[0] - 1 - recorder.Timesteps.Count];
        var expected = sigma * golden["rng_0"] + (1 - sigma) * x0;
        double diff = Golden.AssertClose(recorder.First!.HiddenStates.narrow(0, 0, 1), expected, what: "noised image latents");
        Assert.Equal(0, Golden.MaxAbsDiff(recorder.First.HiddenStates.narrow(0, 0, 1), recorder.First.HiddenStates.narrow(0, 1, 1)));
        output.WriteLine($"{model}: first transformer input max |diff| {diff:E3} (σ = {sigma})");
    }

    /// <summary>Black and white squares of <paramref name="cell"/> pixels.</summary>
    static RgbImage Checkerboard(int width, int height, int cell)
    {
        var rgb = new byte[width * height * 3];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                rgb.AsSpan((y * width + x) * 3, 3).Fill((x / cell + y / cell) % 2 == 0 ? (byte)255 : (byte)0);
        return new RgbImage(width, height, rgb);
    }
}
