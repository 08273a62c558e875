using SharpDiffusion.Configuration;
using SharpDiffusion.Loading;
using SharpDiffusion.Loading.SingleFile;
using SharpDiffusion.Models.Transformers;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Tests.Loading;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Flux;

/// <summary>golden/v3/flux/tiny-flux-dev/single_file: the transformer in BFL's layout (float32, float8_e4m3fn, Q8_0 GGUF)
/// read through <see cref="BflKeyMap"/>; the float32 file is the folder's weights exactly. (The float8 and GGUF pipeline
/// cases are in <see cref="FluxPipelineParityTests"/>.) Files that are not this model's fail in one line.</summary>
public class FluxSingleFileTests(ITestOutputHelper output)
{
    static string TransformerDir(string model) => System.IO.Path.Combine(FluxGolden.ModelDir(model), "transformer");

    static FluxTransformer2DConfig FolderConfig(string model) =>
        FluxTransformer2DConfig.From(JsonConfig.Load(System.IO.Path.Combine(TransformerDir(model), "config.json")));

    [Fact]
    public void The_bfl_file_gives_the_folders_weights_bit_for_bit()
    {
        using var _ = inference_mode();
        using var folder = ComponentLoader.LoadFluxTransformer(TransformerDir("tiny-flux-dev"));
        using var file = (FluxTransformer2DModel)ComponentLoader.FluxTransformerFile(FluxGolden.SingleFile(FluxGolden.BflFile), new LoadOptions(), FolderConfig("tiny-flux-dev")).Module;
        var expected = folder.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var actual = file.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        foreach (var (name, value) in expected)
            Assert.True(Golden.MaxAbsDiff(actual[name], value) == 0, $"{name} differs");
        output.WriteLine($"{expected.Count} parameters identical");
    }

    [Theory]
    [InlineData(FluxGolden.BflFile)]
    [InlineData(FluxGolden.Fp8File)]
    [InlineData(FluxGolden.GgufFile)]
    public void The_config_inferred_from_the_shapes_is_the_folders(string name)
    {
        var folderConfig = FolderConfig("tiny-flux-dev");
        using var file = TensorFiles.Open(FluxGolden.SingleFile(name));
        Assert.Equal(folderConfig, BflKeyMap.InferConfig(file, folderConfig) with { AxesDimsRope = folderConfig.AxesDimsRope });
        // Without a folder the rotary axes are unknown for heads that are not Flux.1's 128 channels.
        var e = Assert.Throws<InvalidDataException>(() => BflKeyMap.InferConfig(file));
        Assert.Contains("axes_dims_rope", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void A_gguf_of_another_architecture_is_refused_in_one_line()
    {
        using var dir = new TempDir();
        string path = dir.File("sd3-Q8_0.gguf");
        var floats = new byte[4 * 4];
        File.WriteAllBytes(path, new GgufTestWriter().String("general.architecture", "sd3").Tensor("img_in.weight", 0, [2, 2], floats).ToBytes());
        var e = Assert.Throws<InvalidDataException>(() => ComponentLoader.FluxTransformerFile(path, new LoadOptions()));
        output.WriteLine(e.Message);
        Assert.Contains("general.architecture is 'sd3'", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void A_file_that_is_not_a_bfl_flux_transformer_is_refused_in_one_line()
    {
        string sd3 = Golden.Path("v3", "models", "tiny-sd3", "transformer", "diffusion_pytorch_model.safetensors");
        var e = Assert.Throws<InvalidDataException>(() => ComponentLoader.FluxTransformerFile(sd3, new LoadOptions()));
        Assert.Contains("not a Flux.1 transformer in BFL's layout", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void The_dev_file_with_the_schnell_folder_is_refused_in_one_line()
    {
        var e = Assert.Throws<InvalidDataException>(() => StableDiffusionPipeline.FromPretrained(FluxGolden.ModelDir("tiny-flux-schnell"),
            new LoadOptions { TransformerFile = FluxGolden.SingleFile(FluxGolden.BflFile) }));
        output.WriteLine(e.Message);
        Assert.Contains("use the file with the model it belongs to", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void A_transformer_file_for_a_model_that_is_not_flux_is_refused_in_one_line()
    {
        var e = Assert.Throws<ArgumentException>(() => StableDiffusionPipeline.FromPretrained(Golden.Path("v3", "models", "tiny-sd3"),
            new LoadOptions { TransformerFile = FluxGolden.SingleFile(FluxGolden.BflFile) }));
        Assert.Contains("replacing the transformer is for Flux models", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}
