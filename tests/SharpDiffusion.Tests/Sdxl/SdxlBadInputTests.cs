using SharpDiffusion.Pipelines;

namespace SharpDiffusion.Tests.Sdxl;

/// <summary>What an SDXL user can get wrong, each refused in one line that names the thing and the fix.</summary>
public class SdxlBadInputTests
{
    /// <summary>A folder with tiny-sdxl's components linked in, model_index.json edited.</summary>
    static TempDir Folder(Func<string, string> editIndex, params string[] leaveOut)
    {
        var dir = new TempDir();
        string source = Golden.Path("models", "tiny-sdxl");
        foreach (var component in Directory.GetDirectories(source))
            if (!leaveOut.Contains(Path.GetFileName(component)))
                Directory.CreateSymbolicLink(Path.Combine(dir.Path, Path.GetFileName(component)), component);
        File.WriteAllText(dir.File("model_index.json"), editIndex(File.ReadAllText(Path.Combine(source, "model_index.json"))));
        return dir;
    }

    static void AssertOneLine(string message, string expected)
    {
        Assert.Contains(expected, message);
        Assert.DoesNotContain("\n", message);
    }

    [Fact]
    public void ARefinerWhoseUNetDoesNotTakeTheAestheticScoreIsRefusedByName()
    {
        // tiny-sdxl's UNet takes 6 time ids; without text_encoder and with requires_aesthetics_score it is a refiner with 5.
        using var dir = Folder(index => System.Text.RegularExpressions.Regex.Replace(index,
            "\"text_encoder\": \\[[^\\]]*\\]", "\"text_encoder\": [null, null], \"requires_aesthetics_score\": true"), "text_encoder", "tokenizer");
        var e = Assert.Throws<InvalidDataException>(() => StableDiffusionPipeline.FromPretrained(dir.Path));
        AssertOneLine(e.Message, "requires_aesthetics_score");
    }

    [Fact]
    public void PromptEmbeddingsWithoutTheirPooledEmbeddingsAreRefusedByName()
    {
        var pipeline = SharpDiffusion.Tests.Pipelines.PipelineParityTests.Pipeline("models/tiny-sdxl");
        using var embeds = TorchSharp.torch.zeros(1, 77, pipeline.Unet.Config.CrossAttentionDim[0]);
        var e = Assert.Throws<ArgumentException>(() => pipeline.Generate(new GenerationOptions { PromptEmbeds = embeds, NumInferenceSteps = 1 }));
        AssertOneLine(e.Message, "PooledPromptEmbeds");
        using var pooled = TorchSharp.torch.zeros(1, pipeline.Unet.Config.PooledTextDim + 1);
        e = Assert.Throws<ArgumentException>(() => pipeline.Generate(new GenerationOptions { PromptEmbeds = embeds, PooledPromptEmbeds = pooled, NumInferenceSteps = 1 }));
        AssertOneLine(e.Message, $"this SDXL model takes {pipeline.Unet.Config.PooledTextDim}");
    }

    [Fact]
    public void AMissingTokenizer2IsNamed()
    {
        using var dir = Folder(index => index, "tokenizer_2");
        var e = Assert.Throws<DirectoryNotFoundException>(() => StableDiffusionPipeline.FromPretrained(dir.Path));
        AssertOneLine(e.Message, "tokenizer_2/");
    }

    [Fact]
    public void ASizeThatIsNoMultipleOf8IsRefusedWithTheNearestThatWorks()
    {
        var pipeline = Pipelines.PipelineParityTests.Pipeline("models/tiny-sdxl");
        var e = Assert.Throws<ArgumentException>(() => pipeline.Validate(new GenerationOptions { Prompts = ["x"], Width = 60, Height = 64 }));
        AssertOneLine(e.Message, "Try 64");
    }

    [Fact]
    public void SdxlOnlyOptionsOnAnSd1ModelAreRefused()
    {
        var pipeline = Pipelines.PipelineParityTests.Pipeline("models/tiny-sd");
        var e = Assert.Throws<ArgumentException>(() => pipeline.Validate(new GenerationOptions { Prompts = ["x"], Prompts2 = ["y"] }));
        AssertOneLine(e.Message, "prompt_2");
    }
}
