using SharpDiffusion.Conditioning;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Tests.Cli;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Sd3;

/// <summary>diffusers' prompt_3 / negative_prompt_3 (the T5 encoder's own text) and max_sequence_length (its token count):
/// what StableDiffusion3Pipeline's encode_prompt does with them, through GenerationOptions and the CLI; other families
/// refuse them in one line.</summary>
[Collection(ProcessWide.Settings)]
public class Sd3PromptOptionsTests
{
    [Fact]
    public void Prompt_3_and_max_sequence_length_reach_only_the_T5_rows()
    {
        var pipeline = Sd3Golden.Pipeline("tiny-sd3", withoutT5: false);
        var conditioner = Assert.IsType<Sd3TextConditioner>(pipeline.Conditioner);
        var options = new GenerationOptions
        {
            Prompts = ["a red sofa"], NegativePrompts = ["blurry"], Prompts3 = ["a sofa, red, in a bright room"],
            NegativePrompts3 = ["dark"], MaxSequenceLength = 40, Width = 64, Height = 64,
        };
        using var _ = inference_mode();
        var batch = new PromptBatch(options, options.Prompts, [options.NegativePromptFor(0)], Guided: true, 64, 64);
        using var conditioning = conditioner.Encode(batch, new List<string>());                     // [2, 77 + 40, 96]
        var (cond, pooled) = conditioner.EncodePrompt(["a red sofa"], ["a red sofa"], ["a sofa, red, in a bright room"], maxSequenceLength: 40);
        var (uncond, negPooled) = conditioner.EncodePrompt(["blurry"], ["blurry"], ["dark"], maxSequenceLength: 40);
        Assert.Equal([2, 77 + 40, 96], conditioning.EncoderHiddenStates.shape);
        Assert.True(conditioning.EncoderHiddenStates.equal(cat([uncond, cond], 0)).all().item<bool>());
        Assert.True(conditioning.Pooled!.equal(cat([negPooled, pooled], 0)).all().item<bool>());

        // prompt_3 changes the T5 rows only: the CLIP rows and the pooled vector are the prompt's.
        var (plain, plainPooled) = conditioner.EncodePrompt(["a red sofa"], ["a red sofa"], ["a red sofa"], maxSequenceLength: 40);
        Assert.True(plain[.., ..77].equal(cond[.., ..77]).all().item<bool>());
        Assert.True(plainPooled.equal(pooled).all().item<bool>());
        Assert.False(plain[.., 77..].equal(cond[.., 77..]).all().item<bool>());
    }

    [Fact]
    public void Prompt_3_on_a_model_without_T5_is_refused_in_one_line()
    {
        var pipeline = SharpDiffusion.Tests.Pipelines.PipelineParityTests.Pipeline(Golden.Path("models", "tiny-sd"));
        var e = Assert.Throws<ArgumentException>(() => pipeline.Validate(new GenerationOptions { Prompts = ["x"], Prompts3 = ["y"] }));
        Assert.Contains("prompt_3", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Throws<ArgumentException>(() => new GenerationOptions { Prompts = ["x"], MaxSequenceLength = 600 }.Validate());
    }

    [Fact]
    public void Generate_takes_prompt_3_and_max_sequence_length()
    {
        using var dir = new TempDir();
        string plain = dir.File("plain.png"), third = dir.File("third.png");
        string[] common = ["generate", "--model", Golden.Path("v3", "models", "tiny-sd3"), "--prompt", "a red sofa", "--seed", "3",
            "--steps", "2", "--width", "64", "--height", "64", "--max-sequence-length", "32"];
        var a = GenerateCommandTests.Run([.. common, "--output", plain]);
        var b = GenerateCommandTests.Run([.. common, "--prompt-3", "a green lamp", "--output", third]);
        Assert.True(a.Code == 0, a.Err);
        Assert.True(b.Code == 0, b.Err);
        Assert.NotEqual(File.ReadAllBytes(plain), File.ReadAllBytes(third));
        var refused = GenerateCommandTests.Run("generate", "--model", Golden.Path("models", "tiny-sd"), "--prompt", "x", "--prompt-3", "y", "--steps", "1", "--output", dir.File("sd.png"));
        Assert.Equal(2, refused.Code);
        Assert.StartsWith("error: ", refused.Err);
    }
}
