using SharpDiffusion.Pipelines;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Pipelines;

/// <summary>diffusers' prompt_embeds / negative_prompt_embeds / latents: the golden run's own tensors given instead of
/// prompts and a seed give the golden image.</summary>
public class PrecomputedInputsTests
{
    [Theory]
    [InlineData("pipelines/tiny-sd/ddim_negative_seed42_20steps_g7.5.safetensors")]
    [InlineData("pipelines/tiny-sd/lms_seed42_20steps_g8.safetensors")]
    public void Golden_embeddings_and_noise_reproduce_the_golden_image(string file)
    {
        var info = GoldenManifest.Info(file);
        var golden = Golden.Load(file.Split('/'));
        var pipeline = PipelineParityTests.Pipeline(info.GetProperty("model").GetString()!);
        var options = PipelineParityTests.Options(info) with
        {
            Prompts = [],
            NegativePrompts = null,
            PromptEmbeds = golden["prompt_embeds"],
            NegativePromptEmbeds = golden["negative_prompt_embeds"],
            Latents = golden["latents_randn"],
            Seed = 999, // no draw may come from the generator
        };
        using var result = pipeline.Generate(options);
        using var bytes = ImageTensors.ToUInt8(result.ImageFloat);
        using var diff = (bytes.to(ScalarType.Int32) - golden["image_uint8"].to(ScalarType.Int32)).abs();
        Assert.True(diff.max().item<int>() <= 1, $"uint8 image differs by {diff.max().item<int>()} levels");
    }

    [Fact]
    public void Latents_of_the_wrong_shape_are_refused_with_the_expected_shape()
    {
        var pipeline = PipelineParityTests.Pipeline("models/tiny-sd");
        using var latents = zeros(1, 4, 8, 8);
        var e = Assert.Throws<ArgumentException>(() => pipeline.Generate(new GenerationOptions { Prompts = ["x"], NumInferenceSteps = 1, Latents = latents }));
        Assert.Contains("[1, 4, 32, 32]", e.Message);
    }
}
