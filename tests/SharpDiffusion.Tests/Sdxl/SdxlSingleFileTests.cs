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

    [Fact]
    public void ANonStandardSecondTextEncoderWithoutItsConfigIsRefusedByName()
    {
        var e = Assert.Throws<InvalidDataException>(() => StableDiffusionPipeline.FromSingleFile(File, singleFile: Options with { TextEncoder2Config = null }));
        Assert.Contains("--text-encoder-2-config", e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }
}
