using SharpDiffusion.Loading.SingleFile;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Tests.Pipelines;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Sdxl;

/// <summary>An SDXL single-file checkpoint (golden README "SDXL single-file checkpoint"): every tensor lands where the
/// diffusers folder has it, and the pipeline case made from the file matches diffusers.</summary>
public class SdxlSingleFileTests(ITestOutputHelper output)
{
    static readonly string File = Golden.Path("single_file", "tiny-sdxl.safetensors");

    /// <summary>What the tensors cannot tell, as the golden run supplied it: the yaml, both text encoders' configs, image_size 64.</summary>
    static SingleFileOptions Options => new()
    {
        OriginalConfig = Golden.Path("single_file", "sd_xl_base-tiny-sdxl.yaml"),
        TextEncoderConfig = Golden.Path("models", "tiny-sdxl", "text_encoder", "config.json"),
        TextEncoder2Config = Golden.Path("models", "tiny-sdxl", "text_encoder_2", "config.json"),
        ImageSize = 64,
    };

    [Fact]
    public void EveryWeightEqualsTheDiffusersFolders()
    {
        using var fromFile = StableDiffusionPipeline.FromSingleFile(File, singleFile: Options);
        var folder = PipelineParityTests.Pipeline("models/tiny-sdxl");
        Assert.True(fromFile.IsXL);
        foreach (var (what, a, b) in new (string, nn.Module, nn.Module)[]
                 {
                     ("unet", fromFile.Unet, folder.Unet), ("vae", fromFile.Vae, folder.Vae),
                     ("text_encoder", fromFile.TextEncoder, folder.TextEncoder), ("text_encoder_2", fromFile.TextEncoder2!, folder.TextEncoder2!),
                 })
        {
            var expected = b.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            var actual = a.named_parameters().ToList();
            Assert.Equal(expected.Count, actual.Count);
            foreach (var (name, value) in actual)
            {
                var other = expected[name];
                Assert.True(value.shape.SequenceEqual(other.shape) && value.to(ScalarType.Float32).eq(other.to(ScalarType.Float32)).all().item<bool>(),
                    $"{what}.{name} differs from the folder's");
            }
        }
        Assert.Equal(folder.Unet.Config.AdditionTimeEmbedDim, fromFile.Unet.Config.AdditionTimeEmbedDim);
        Assert.Equal(folder.Unet.Config.TransformerLayersPerBlock, fromFile.Unet.Config.TransformerLayersPerBlock);
        Assert.Equal(folder.Vae.Config.ScalingFactor, fromFile.Vae.Config.ScalingFactor);
        Assert.Equal(folder.DefaultSize, fromFile.DefaultSize);
    }

    [Fact]
    public void PipelineFromTheFileMatchesDiffusers()
    {
        const string file = "single_file/pipelines/euler_fromsinglefile_64x64_seed123_8steps_g5.safetensors";
        var info = GoldenManifest.Info(file);
        var golden = Golden.Load(file.Split('/'));
        using var pipeline = StableDiffusionPipeline.FromSingleFile(File, singleFile: Options);
        var summary = PipelineParityTests.GenerateAndCompare(pipeline, PipelineParityTests.Options(info), golden);
        output.WriteLine($"{file}: {summary}");
    }

    /// <summary>convert writes an SDXL file as a diffusers SDXL folder (text_encoder_2, tokenizer_2 padding with "!",
    /// StableDiffusionXLPipeline with force_zeros_for_empty_prompt): the folder draws the golden case as the file does.</summary>
    [Fact]
    public void ConvertedToAFolderItDrawsTheGoldenCase()
    {
        const string file = "single_file/pipelines/euler_fromsinglefile_64x64_seed123_8steps_g5.safetensors";
        using var dir = new TempDir();
        string folder = System.IO.Path.Combine(dir.Path, "tiny-sdxl");
        DiffusersFolderWriter.Convert(File, folder, singleFile: Options);
        var index = System.Text.Json.Nodes.JsonNode.Parse(System.IO.File.ReadAllText(System.IO.Path.Combine(folder, "model_index.json")))!;
        Assert.Equal("StableDiffusionXLPipeline", (string?)index["_class_name"]);
        Assert.Equal("CLIPTextModelWithProjection", (string?)index["text_encoder_2"]![1]);
        var golden2 = System.Text.Json.Nodes.JsonNode.Parse(System.IO.File.ReadAllText(Golden.Path("models", "tiny-sdxl", "tokenizer_2", "special_tokens_map.json")))!;
        var written2 = System.Text.Json.Nodes.JsonNode.Parse(System.IO.File.ReadAllText(System.IO.Path.Combine(folder, "tokenizer_2", "special_tokens_map.json")))!;
        Assert.Equal((string?)golden2["pad_token"], (string?)written2["pad_token"]);

        using var pipeline = StableDiffusionPipeline.FromPretrained(folder);
        Assert.True(pipeline.IsXL);
        var summary = PipelineParityTests.GenerateAndCompare(pipeline, PipelineParityTests.Options(GoldenManifest.Info(file)), Golden.Load(file.Split('/')));
        output.WriteLine($"{file} from the converted folder: {summary}");
    }

    [Fact]
    public void ANonStandardSecondTextEncoderWithoutItsConfigIsRefusedByName()
    {
        var e = Assert.Throws<InvalidDataException>(() => StableDiffusionPipeline.FromSingleFile(File, singleFile: Options with { TextEncoder2Config = null }));
        Assert.Contains("--text-encoder-2-config", e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }
}
