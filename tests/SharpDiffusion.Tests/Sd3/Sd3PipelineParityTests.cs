using SharpDiffusion.Conditioning;
using SharpDiffusion.Families;
using SharpDiffusion.Families.StableDiffusion3;
using SharpDiffusion.Loading;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Schedulers;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Sd3;

/// <summary>golden/v3/sd3/&lt;model&gt;/&lt;case&gt;: StableDiffusion3Pipeline and StableDiffusion3Img2ImgPipeline runs
/// against diffusers 0.31: encode_prompt, the scheduler's timesteps, the noise draws, the first transformer call's inputs
/// and output, the latents after every step and the images.</summary>
public class Sd3PipelineParityTests(ITestOutputHelper output)
{
    public static IEnumerable<object[]> Cases() => Sd3Golden.Cases();

    public static IEnumerable<object[]> TextToImageCases() => Sd3Golden.Cases().Where(c => !((string)c[1]).StartsWith("img2img", StringComparison.Ordinal));

    [Theory]
    [MemberData(nameof(Cases))]
    public void Encode_prompt_matches_diffusers(string model, string name)
    {
        var info = Sd3Golden.Info(model, name);
        var golden = Golden.Load(Sd3Golden.File(model, name));
        var pipeline = Sd3Golden.Pipeline(model, Sd3Golden.WithoutT5(name));
        Assert.IsType<StableDiffusion3Family>(pipeline.Family);
        var conditioner = Assert.IsType<Sd3TextConditioner>(pipeline.Conditioner);
        Assert.Equal(Sd3Golden.WithoutT5(name), conditioner.T5 is null);
        var options = Sd3Golden.Options(info);

        using var _ = inference_mode();
        var prompts = options.Prompts;
        var (embeds, pooled) = conditioner.EncodePrompt(prompts, prompts, prompts);
        double worst = Golden.AssertClose(embeds, golden["prompt_embeds"], what: "prompt_embeds");
        worst = Math.Max(worst, Golden.AssertClose(pooled, golden["pooled_prompt_embeds"], what: "pooled_prompt_embeds"));
        if (golden.ContainsKey("negative_prompt_embeds"))
        {
            // No negative prompt: diffusers encodes "" (not zeros).
            var negatives = Enumerable.Range(0, prompts.Count).Select(options.NegativePromptFor).ToList();
            var (negEmbeds, negPooled) = conditioner.EncodePrompt(negatives, negatives, negatives);
            worst = Math.Max(worst, Golden.AssertClose(negEmbeds, golden["negative_prompt_embeds"], what: "negative_prompt_embeds"));
            worst = Math.Max(worst, Golden.AssertClose(negPooled, golden["negative_pooled_prompt_embeds"], what: "negative_pooled_prompt_embeds"));
        }
        output.WriteLine($"{model}/{name}: encode_prompt max |diff| {worst:E3}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Scheduler_timesteps_and_noise_draws_match_diffusers(string model, string name)
    {
        var info = Sd3Golden.Info(model, name);
        var golden = Golden.Load(Sd3Golden.File(model, name));
        var pipeline = Sd3Golden.Pipeline(model, Sd3Golden.WithoutT5(name));
        var options = Sd3Golden.Options(info);

        var scheduler = pipeline.CreateScheduler(null);
        Assert.IsType<FlowMatchEulerDiscreteScheduler>(scheduler);
        pipeline.Denoiser.SetTimesteps(scheduler, options.NumInferenceSteps, golden["rng_0"].shape);
        Golden.AssertClose(tensor(scheduler.Timesteps.ToArray()), golden["scheduler_timesteps"], what: "timesteps");
        Golden.AssertClose(tensor(scheduler.Sigmas!.ToArray()), golden["scheduler_sigmas"], what: "sigmas");

        // txt2img draws the initial latents; img2img first the VAE posterior sample (same shape), then the noise.
        using var generator = new Generator((ulong)options.Seed!.Value);
        var shape = golden["rng_0"].shape;
        if (options.Strength is not null)
            randn(shape, generator: generator).Dispose();
        using var draw = InitialNoise.Draw(shape, generator, pipeline.Device);
        Assert.Equal(0, Golden.MaxAbsDiff(draw, golden["rng_0"]));
    }

    [Theory]
    [MemberData(nameof(TextToImageCases))]
    public void Pipeline_matches_diffusers(string model, string name)
    {
        var info = Sd3Golden.Info(model, name);
        var golden = Golden.Load(Sd3Golden.File(model, name));
        var (pipeline, recorder) = Recording.Wrap(Sd3Golden.Pipeline(model, Sd3Golden.WithoutT5(name)));

        using var _ = inference_mode();
        var summary = SharpDiffusion.Tests.Pipelines.PipelineParityTests.GenerateAndCompare(pipeline, Sd3Golden.Options(info), golden);

        Assert.Equal(golden["denoiser_timesteps"].data<float>().ToArray(), recorder.Timesteps.ToArray());
        var first = recorder.First!;
        double worst = Golden.AssertClose(first.HiddenStates, golden["denoiser_call0_hidden_states"], what: "call 0 hidden_states");
        Golden.AssertClose(full([first.HiddenStates.shape[0]], first.Timestep, dtype: ScalarType.Float32), golden["denoiser_call0_timestep"], what: "call 0 timestep");
        worst = Math.Max(worst, Golden.AssertClose(first.Conditioning.EncoderHiddenStates, golden["denoiser_call0_encoder_hidden_states"], what: "call 0 encoder_hidden_states"));
        worst = Math.Max(worst, Golden.AssertClose(first.Conditioning.Pooled!, golden["denoiser_call0_pooled_projections"], what: "call 0 pooled_projections"));
        worst = Math.Max(worst, Golden.AssertClose(recorder.FirstOutput!, golden["denoiser_output_call0"], rel: 1e-3, what: "call 0 output"));
        output.WriteLine($"{model}/{name}: {summary}; call-0 inputs/output max |diff| {worst:E3}");
    }
}
