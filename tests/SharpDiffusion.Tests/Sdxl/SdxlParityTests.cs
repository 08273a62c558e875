using SharpDiffusion.Conditioning;
using SharpDiffusion.Loading;
using SharpDiffusion.Models.UNet;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Tests.Pipelines;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Sdxl;

/// <summary>SDXL against diffusers 0.25 (golden README "SDXL tiny"): both text encoders, the UNet's text_time
/// conditioning, and every sdxl/pipelines case.</summary>
public class SdxlParityTests(ITestOutputHelper output)
{
    const string Model = "models/tiny-sdxl";

    [Theory]
    [InlineData("text_encoder", "sdxl/text_encoder_tiny-sdxl.safetensors")]
    [InlineData("text_encoder_2", "sdxl/text_encoder_2_tiny-sdxl.safetensors")]
    public void TextEncoderHiddenStatesAndTextEmbedsMatchTransformers(string component, string file)
    {
        var golden = Golden.Load(file.Split('/'));
        using var encoder = ComponentLoader.LoadTextEncoder(Golden.Path("models", "tiny-sdxl", component));
        using var _ = inference_mode();
        var ids = golden["input_ids"];
        int layers = encoder.Config.NumHiddenLayers;
        for (int fromEnd = 1; fromEnd <= layers + 1; fromEnd++)
        {
            var (hidden, textEmbeds) = encoder.EncodeHidden(ids, fromEnd);
            using (hidden)
            using (textEmbeds)
            {
                Golden.AssertClose(hidden, golden[$"hidden_states.{layers + 1 - fromEnd}"], what: $"hidden_states[-{fromEnd}]");
                if (golden.TryGetValue("text_embeds", out var expected))
                    Golden.AssertClose(textEmbeds!, expected, what: "text_embeds");
                else
                    Assert.Null(textEmbeds);
            }
        }
    }

    [Theory]
    [InlineData("out_t999", 999f)]
    [InlineData("out_t500", 500f)]
    [InlineData("out_t500_5", 500.5f)]
    [InlineData("out_t1", 1f)]
    [InlineData("out_t0", 0f)]
    public void UNetWithAddedConditioningMatchesDiffusers(string key, float timestep)
    {
        var golden = Golden.Load("sdxl", "unet_tiny-sdxl.safetensors");
        using var unet = ComponentLoader.LoadUNet(Golden.Path("models", "tiny-sdxl", "unet"));
        using var _ = inference_mode();
        var conditioning = new TextConditioning(golden["encoder_hidden_states"]) { Pooled = golden["added_text_embeds"], TimeIds = golden["added_time_ids"] };
        using var outputTensor = unet.Forward(golden["sample"], timestep, conditioning);
        Golden.AssertClose(outputTensor, golden[key], what: key);
    }

    [Fact]
    public void UNetWithPerSampleTimestepsMatchesDiffusers()
    {
        var golden = Golden.Load("sdxl", "unet_tiny-sdxl.safetensors");
        using var unet = ComponentLoader.LoadUNet(Golden.Path("models", "tiny-sdxl", "unet"));
        using var _ = inference_mode();
        var conditioning = new TextConditioning(golden["encoder_hidden_states"]) { Pooled = golden["added_text_embeds"], TimeIds = golden["added_time_ids"] };
        using var outputTensor = unet.Forward(golden["sample"], golden["timesteps_per_sample"], conditioning);
        Golden.AssertClose(outputTensor, golden["out_per_sample"], what: "out_per_sample");
    }

    public static IEnumerable<object[]> Cases() =>
        Directory.GetFiles(Golden.Path("sdxl", "pipelines"), "*.safetensors").Order()
            .Select(f => new object[] { "sdxl/pipelines/" + Path.GetFileName(f) });

    [Theory]
    [MemberData(nameof(Cases))]
    public void PipelineMatchesDiffusers(string file)
    {
        var info = GoldenManifest.Info(file);
        var golden = Golden.Load(file.Split('/'));
        var pipeline = PipelineParityTests.Pipeline(Model);
        var options = PipelineParityTests.Options(info);
        Assert.True(pipeline.IsXL);

        using (var _ = inference_mode())
        {
            // The conditioning the UNet is given: encoder states, pooled embeddings and time ids, uncond rows first.
            int height = options.Height ?? pipeline.DefaultSize, width = options.Width ?? pipeline.DefaultSize;
            var size = new SizeConditioning((height, width), (0, 0), (height, width));
            using var conditioning = pipeline.XLPromptEncoder!.EncodeConditioning(options.Prompts, options.Prompts,
                options.HasNegativePrompt ? options.NegativePrompts : null, options.HasNegativePrompt ? options.NegativePrompts : null,
                guided: true, clipSkip: 1, size, size);
            Golden.AssertClose(conditioning.EncoderHiddenStates, golden["unet_encoder_hidden_states"], what: "encoder_hidden_states");
            Golden.AssertClose(conditioning.Pooled!, golden["unet_added_text_embeds"], what: "text_embeds");
            Golden.AssertClose(conditioning.TimeIds!, golden["unet_added_time_ids"], what: "time_ids");
        }

        var summary = PipelineParityTests.GenerateAndCompare(pipeline, options, golden);
        output.WriteLine($"{file}: {summary}");
    }

    /// <summary>diffusers' prompt_embeds / pooled_prompt_embeds (and the negative ones) given directly: the golden case's own
    /// UNet conditioning rows, cond and uncond, draw the golden image.</summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void PromptEmbeddingsGivenDirectlyDrawTheGoldenImage(string file)
    {
        var info = GoldenManifest.Info(file);
        var golden = Golden.Load(file.Split('/'));
        var pipeline = PipelineParityTests.Pipeline(Model);
        var options = PipelineParityTests.Options(info);
        Tensor states = golden["unet_encoder_hidden_states"], pooled = golden["unet_added_text_embeds"];   // [2B, 77, D], [2B, P]
        long batch = states.shape[0] / 2;
        var summary = PipelineParityTests.GenerateAndCompare(pipeline, options with
        {
            Prompts = [],
            NegativePrompts = null,
            PromptEmbeds = states.narrow(0, batch, batch),
            PooledPromptEmbeds = pooled.narrow(0, batch, batch),
            NegativePromptEmbeds = states.narrow(0, 0, batch),
            NegativePooledPromptEmbeds = pooled.narrow(0, 0, batch),
        }, golden);
        output.WriteLine($"{file} from its embeddings: {summary}");
    }

    /// <summary>AUTOMATIC1111 syntax without emphasis or BREAK reads a short prompt as diffusers does: the same ids for both
    /// tokenizers (the second padded with "!"), unit weights, so the same embeddings and pooled embedding.</summary>
    [Fact]
    public void A1111SyntaxOfAPlainPromptEncodesAsDiffusers()
    {
        const string file = "sdxl/pipelines/euler_negative_64x64_seed42_15steps_g5.safetensors";
        var golden = Golden.Load(file.Split('/'));
        var options = PipelineParityTests.Options(GoldenManifest.Info(file));
        var pipeline = PipelineParityTests.Pipeline(Model);
        using var _ = inference_mode();
        var (embeds, pooled) = pipeline.XLPromptEncoder!.EncodeA1111(options.Prompts, clipSkip: 1);
        using (embeds) using (pooled)
        {
            Golden.AssertClose(embeds, golden["prompt_embeds"], what: "prompt_embeds");
            Golden.AssertClose(pooled, golden["pooled_prompt_embeds"], what: "pooled_prompt_embeds");
        }
        var (negative, negativePooled) = pipeline.XLPromptEncoder.EncodeA1111(options.NegativePrompts!, clipSkip: 1);
        using (negative) using (negativePooled)
            Golden.AssertClose(negative, golden["negative_prompt_embeds"], what: "negative_prompt_embeds");
    }

    /// <summary>BREAK makes a second 77-token chunk through both encoders; the pooled embedding is the first chunk's.</summary>
    [Fact]
    public void A1111BreakAddsAChunkAndPoolsTheFirst()
    {
        var encoder = PipelineParityTests.Pipeline(Model).XLPromptEncoder!;
        using var _ = inference_mode();
        var (both, pooledBoth) = encoder.EncodeA1111(["a red bicycle BREAK a brick wall"], clipSkip: 1);
        var (first, pooledFirst) = encoder.EncodeA1111(["a red bicycle"], clipSkip: 1);
        using (both) using (pooledBoth) using (first) using (pooledFirst)
        {
            Assert.Equal(new long[] { 1, 154, 64 }, both.shape);
            Golden.AssertClose(pooledBoth, pooledFirst, what: "pooled of the first chunk");
            Golden.AssertClose(both.narrow(1, 0, 77), first, what: "the first chunk");
        }
    }
}
