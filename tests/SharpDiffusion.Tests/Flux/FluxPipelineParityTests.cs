using SharpDiffusion.Conditioning;
using SharpDiffusion.Families.Flux;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Schedulers;
using SharpDiffusion.Tests.Sd3;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Flux;

/// <summary>golden/v3/flux/&lt;model&gt;/&lt;case&gt;: FluxPipeline runs against diffusers 0.31 (dev: guidance embedding and
/// dynamic shift; schnell: shift 1, 256 T5 tokens; dev's single_file/ cases with the transformer read from the float8
/// and Q8_0 GGUF files): encode_prompt, the schedule, the noise, the first transformer call's inputs and output, the
/// latents after every step and the image.</summary>
public class FluxPipelineParityTests(ITestOutputHelper output)
{
    public static IEnumerable<object[]> Cases() => FluxGolden.Cases();

    static StableDiffusionPipeline PipelineFor(string model, string name) => FluxGolden.Pipeline(model, FluxGolden.TransformerFileOf(name));

    [Theory]
    [MemberData(nameof(Cases))]
    public void Encode_prompt_matches_diffusers(string model, string name)
    {
        var golden = Golden.Load(FluxGolden.File(model, name));
        var options = FluxGolden.Options(FluxGolden.Info(model, name));
        var pipeline = PipelineFor(model, name);
        Assert.IsType<FluxFamily>(pipeline.Family);
        var conditioner = Assert.IsType<FluxTextConditioner>(pipeline.Conditioner);
        Assert.Equal(options.MaxSequenceLength, conditioner.DefaultMaxSequenceLength); // each case used its model's default

        using var _ = inference_mode();
        var (embeds, pooled) = conditioner.EncodePrompt(options.Prompts, options.Prompts, options.MaxSequenceLength!.Value);
        double worst = Golden.AssertClose(embeds, golden["prompt_embeds"], what: "prompt_embeds");
        worst = Math.Max(worst, Golden.AssertClose(pooled, golden["pooled_prompt_embeds"], what: "pooled_prompt_embeds"));
        Assert.Equal(0, Golden.MaxAbsDiff(FluxLatents.TextIds(embeds.shape[1]), golden["text_ids"]));
        output.WriteLine($"{model}/{name}: encode_prompt max |diff| {worst:E3}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Scheduler_timesteps_and_noise_draws_match_diffusers(string model, string name)
    {
        var golden = Golden.Load(FluxGolden.File(model, name));
        var options = FluxGolden.Options(FluxGolden.Info(model, name));
        var pipeline = PipelineFor(model, name);

        var scheduler = pipeline.CreateScheduler(null);
        Assert.IsType<FlowMatchEulerDiscreteScheduler>(scheduler);
        var shape = golden["rng_0"].shape;
        Assert.Equal(pipeline.LatentFormat.Shape(1, options.Width!.Value, options.Height!.Value), shape);
        pipeline.Denoiser.SetTimesteps(scheduler, options.NumInferenceSteps, shape);
        Golden.AssertClose(tensor(scheduler.Timesteps.ToArray()), golden["scheduler_timesteps"], rel: 0, abs: 1e-5 * 1000, what: "timesteps");
        Golden.AssertClose(tensor(scheduler.Sigmas!.ToArray()), golden["scheduler_sigmas"], rel: 0, abs: 1e-5, what: "sigmas");

        using var generator = new Generator((ulong)options.Seed!.Value);
        using var draw = InitialNoise.Draw(shape, generator, pipeline.Device);
        Assert.Equal(0, Golden.MaxAbsDiff(draw, golden["rng_0"]));
        // The pipeline packs the draw; the first call's hidden_states are those tokens.
        Assert.Equal(0, Golden.MaxAbsDiff(FluxLatents.Pack(draw), golden["denoiser_call0_hidden_states"]));
    }

    /// <summary>The transformer's inputs as the denoiser builds them from the first step's latents (ids, t/1000, the guidance
    /// scale for dev), and its output on diffusers' own inputs.</summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void First_transformer_call_matches_diffusers(string model, string name)
    {
        var golden = Golden.Load(FluxGolden.File(model, name));
        var options = FluxGolden.Options(FluxGolden.Info(model, name));
        var denoiser = Assert.IsType<FluxTransformerDenoiser>(PipelineFor(model, name).Denoiser);
        var transformer = denoiser.Transformer;
        using var _ = inference_mode();

        var shape = golden["rng_0"].shape;
        float t = golden["scheduler_timesteps"][0].item<float>();
        var built = FluxTransformerDenoiser.TransformerInput(transformer, golden["rng_0"], t, golden["prompt_embeds"], golden["pooled_prompt_embeds"],
            (float)options.GuidanceScale, ScalarType.Float32);
        Assert.Equal(0, Golden.MaxAbsDiff(built.HiddenStates, golden["denoiser_call0_hidden_states"]));
        Assert.Equal(0, Golden.MaxAbsDiff(built.Timestep, golden["denoiser_call0_timestep"]));
        Assert.Equal(0, Golden.MaxAbsDiff(built.ImgIds, golden["denoiser_call0_img_ids"]));
        Assert.Equal(0, Golden.MaxAbsDiff(built.TxtIds, golden["denoiser_call0_txt_ids"]));
        Assert.Equal(golden.ContainsKey("denoiser_call0_guidance"), built.Guidance is not null);
        if (built.Guidance is { } guidance)
            Assert.Equal(0, Golden.MaxAbsDiff(guidance, golden["denoiser_call0_guidance"]));

        var input = FluxGolden.FirstCall(golden);
        double diff = Golden.AssertClose(transformer.Forward(input), golden["denoiser_output_call0"], what: $"{model}/{name} call 0 output");
        output.WriteLine($"{model}/{name}: first transformer call max |diff| {diff:E3} (max |expected| {Golden.MaxAbs(golden["denoiser_output_call0"]):E3}); {shape[2]}x{shape[3]} latents");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Pipeline_matches_diffusers(string model, string name)
    {
        var golden = FluxGolden.Load(model, name);
        var (pipeline, recorder) = Recording.Wrap(PipelineFor(model, name));

        using var _ = inference_mode();
        var summary = SharpDiffusion.Tests.Pipelines.PipelineParityTests.GenerateAndCompare(pipeline, FluxGolden.Options(FluxGolden.Info(model, name)), golden);

        // The transformer sees t/1000, the loop t: diffusers' stored values are the former.
        Assert.Equal(golden["denoiser_timesteps"].data<float>().ToArray(), recorder.Timesteps.Select(t => t / 1000f).ToArray());
        var first = recorder.First!;
        double worst = Golden.AssertClose(FluxLatents.Pack(first.HiddenStates), golden["denoiser_call0_hidden_states"], what: "call 0 hidden_states");
        worst = Math.Max(worst, Golden.AssertClose(first.Conditioning.EncoderHiddenStates, golden["denoiser_call0_encoder_hidden_states"], what: "call 0 encoder_hidden_states"));
        worst = Math.Max(worst, Golden.AssertClose(first.Conditioning.Pooled!, golden["denoiser_call0_pooled_projections"], what: "call 0 pooled_projections"));
        worst = Math.Max(worst, Golden.AssertClose(FluxLatents.Pack(recorder.FirstOutput!), golden["denoiser_output_call0"], rel: 1e-3, what: "call 0 output"));
        output.WriteLine($"{model}/{name}: {summary}; call-0 inputs/output max |diff| {worst:E3}");
    }
}
