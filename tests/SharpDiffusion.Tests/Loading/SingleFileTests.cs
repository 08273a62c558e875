using System.Text.Json.Nodes;
using SharpDiffusion.Configuration;
using SharpDiffusion.Loading;
using SharpDiffusion.Loading.SingleFile;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Tests.Pipelines;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Loading;

/// <summary>golden/single_file/ ("Single-file checkpoint"): small-sd15.safetensors is models/small-sd15 in the LDM layout.</summary>
public class SingleFileTests(ITestOutputHelper output)
{
    static string File15 => Golden.Path("single_file", "small-sd15.safetensors");
    static string Yaml15 => Golden.Path("single_file", "v1-inference-small-sd15.yaml");
    static string Folder15 => Golden.Path("models", "small-sd15");
    /// <summary>small-sd15's text encoder (hidden 64) is not a standard CLIP size: its config is given, as the golden's
    /// from_single_file was given the CLIPTextModel.</summary>
    static SingleFileOptions Options(bool yaml) => new()
    {
        OriginalConfig = yaml ? Yaml15 : null,
        TextEncoderConfig = Path.Combine(Folder15, "text_encoder", "config.json"),
    };
    static readonly LoadOptions Exact = new() { ChannelsLast = false };

    /// <summary>Every parameter of the two pipelines, bit for bit.</summary>
    internal static void AssertSameWeights(StableDiffusionPipeline expected, StableDiffusionPipeline actual)
    {
        foreach (var (name, a, b) in new (string, nn.Module, nn.Module)[]
                 { ("unet", expected.Unet, actual.Unet), ("vae", expected.Vae, actual.Vae), ("text_encoder", expected.TextEncoder, actual.TextEncoder) })
        {
            var want = a.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            var got = b.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            Assert.Equal(want.Keys.Order(), got.Keys.Order());
            foreach (var (key, w) in want)
            {
                using var g = got[key].contiguous();
                using var wc = w.contiguous();
                Assert.True(wc.dtype == g.dtype && wc.shape.SequenceEqual(g.shape) && wc.bytes.SequenceEqual(g.bytes), $"{name}.{key} differs");
            }
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Single_file_loads_bit_identical_to_the_folder(bool withYaml)
    {
        using var folder = StableDiffusionPipeline.FromPretrained(Folder15, Exact);
        using var single = StableDiffusionPipeline.FromSingleFile(File15, Exact, Options(withYaml));
        AssertSameWeights(folder, single);
        Assert.Equal(folder.Unet.Config.NumAttentionHeads, single.Unet.Config.NumAttentionHeads);
        Assert.Equal(0.18215, single.Vae.Config.ScalingFactor);
        Assert.Equal("PNDMScheduler", single.SchedulerConfig.ClassName);
        Assert.Equal(49407, single.Tokenizer.PadTokenId);
        Assert.Equal("small-sd15", single.ModelName);
        Assert.Null(folder.ModelHash);
    }

    /// <summary>The .ckpt variant (torch.save zip pickle, {"state_dict": …}) holds the same tensors: it loads to the same
    /// weights as the folder, read without running anything.</summary>
    [Fact]
    public void Ckpt_checkpoint_loads_bit_identical_to_the_folder()
    {
        using var folder = StableDiffusionPipeline.FromPretrained(Folder15, Exact);
        using var single = StableDiffusionPipeline.FromSingleFile(Golden.Path("single_file", "small-sd15.ckpt"), Exact, Options(yaml: true));
        AssertSameWeights(folder, single);
    }

    [Fact]
    public void Architecture_is_inferred_from_the_tensors()
    {
        using var file = TensorFiles.Open(File15);
        var withYaml = LdmCheckpoint.Inspect(file, Options(yaml: true));
        var folderUnet = JsonNode.Parse(File.ReadAllText(Path.Combine(Folder15, "unet", "config.json")))!.AsObject();
        foreach (string key in (string[])["block_out_channels", "down_block_types", "up_block_types", "layers_per_block", "in_channels", "out_channels",
                     "cross_attention_dim", "attention_head_dim", "use_linear_projection", "sample_size", "transformer_layers_per_block"])
            Assert.True(JsonNode.DeepEquals(folderUnet[key], withYaml.UNetConfig[key]), $"unet {key}: folder {folderUnet[key]?.ToJsonString()}, inferred {withYaml.UNetConfig[key]?.ToJsonString()}");
        var folderVae = JsonNode.Parse(File.ReadAllText(Path.Combine(Folder15, "vae", "config.json")))!.AsObject();
        foreach (string key in (string[])["block_out_channels", "layers_per_block", "latent_channels", "in_channels", "out_channels", "sample_size", "scaling_factor"])
            Assert.True(JsonNode.DeepEquals(folderVae[key], withYaml.VaeConfig[key]), $"vae {key}: folder {folderVae[key]?.ToJsonString()}, inferred {withYaml.VaeConfig[key]?.ToJsonString()}");
        Assert.Equal(LdmTextEncoder.Clip, withYaml.TextEncoderKind);

        // Without the yaml: SD 1.x defaults (8 heads, 512 px), the same weights' shapes.
        var bare = LdmCheckpoint.Inspect(file, new SingleFileOptions { TextEncoderConfig = Options(false).TextEncoderConfig });
        Assert.Equal(8, bare.UNetConfig["attention_head_dim"]!.GetValue<int>());
        Assert.Equal(64, bare.UNetConfig["sample_size"]!.GetValue<int>());
        Assert.Contains(bare.Warnings, w => w.Contains("8 per level"));
    }

    [Fact]
    public void Text_encoder_of_a_non_standard_size_needs_its_config()
    {
        var e = Assert.Throws<InvalidDataException>(() => StableDiffusionPipeline.FromSingleFile(File15, Exact));
        Assert.Contains(File15, e.Message);
        Assert.Contains("--text-encoder-config", e.Message);
    }

    [Fact]
    public void Ldm_yaml_is_read()
    {
        var yaml = LdmYaml.Load(Yaml15);
        Assert.Equal(0.18215, yaml.Double("model.params.scale_factor"));
        Assert.Equal(8, yaml.Int("model.params.unet_config.params.num_heads"));
        Assert.Equal([4, 2, 1], yaml.IntOrList("model.params.unet_config.params.attention_resolutions")!);
        Assert.Equal([1, 2, 2, 2], yaml.IntOrList("model.params.first_stage_config.params.ddconfig.ch_mult")!);
        Assert.Equal("jpg", yaml.String("model.params.first_stage_key"));
        Assert.True(yaml.Bool("model.params.unet_config.params.use_spatial_transformer"));
        Assert.Equal("ldm.modules.encoders.modules.FrozenCLIPEmbedder", yaml.String("model.params.cond_stage_config.target"));

        var v2 = LdmYaml.Parse("""
            model:
              target: ldm.models.diffusion.ddpm.LatentDiffusion
              params:
                parameterization: "v"   # 768-v
                unet_config:
                  params:
                    num_head_channels: 64 # need to fix for flash-attn
                    num_heads: [ 5, 10, 20, 20 ]
                    use_linear_in_transformer: True
                    list:
                    - a: 1
                      b: 2
                    - 3
            """, "inline");
        Assert.Equal("v", v2.String("model.params.parameterization"));
        Assert.Equal(64, v2.Int("model.params.unet_config.params.num_head_channels"));
        Assert.Equal([5, 10, 20, 20], v2.IntOrList("model.params.unet_config.params.num_heads")!);
        Assert.True(v2.Bool("model.params.unet_config.params.use_linear_in_transformer"));
        Assert.Null(v2.Get("model.params.missing"));
    }

    public static IEnumerable<object[]> FolderCases() =>
        new[] { "pipelines/small-sd15/pndm_default_seed42_20steps_g7.5.safetensors", "pipelines/small-sd15/lms_seed42_20steps_g8.safetensors" }
            .Select(f => new object[] { f });

    [Theory]
    [MemberData(nameof(FolderCases))]
    public void Single_file_reproduces_the_folder_pipeline_images(string file)
    {
        var info = GoldenManifest.Info(file);
        Assert.Equal("models/small-sd15", info.GetProperty("model").GetString());
        var golden = Golden.Load(file.Split('/'));
        using var pipeline = StableDiffusionPipeline.FromSingleFile(File15, new LoadOptions(), Options(yaml: true));
        output.WriteLine($"{file}: {PipelineParityTests.GenerateAndCompare(pipeline, PipelineParityTests.Options(info), golden)}");
    }

    [Fact]
    public void Model_hash_is_the_sha256_prefix_and_goes_into_the_infotext()
    {
        using var pipeline = StableDiffusionPipeline.FromSingleFile(File15, Exact, Options(yaml: true));
        Assert.Equal("58e8644c13", pipeline.ModelHash); // sha256sum small-sd15.safetensors
        string text = SharpDiffusion.Imaging.InfoText.Format("a cat", "", 20, "PNDM", 7.5, 42, 64, 64, pipeline.ModelName, modelHash: pipeline.ModelHash);
        Assert.EndsWith("Size: 64x64, Model hash: 58e8644c13, Model: small-sd15", text);
        Assert.DoesNotContain("Model hash", SharpDiffusion.Imaging.InfoText.Format("a cat", "", 20, "PNDM", 7.5, 42, 64, 64, "folder"));
    }

    [Theory]
    [InlineData("float32")]
    [InlineData("float16")]
    public void Convert_round_trip_is_bit_identical(string dtypeName)
    {
        var dtype = dtypeName == "float32" ? ScalarType.Float32 : ScalarType.Float16;
        using var dir = new TempDir();
        string target = dir.File("converted");
        DiffusersFolderWriter.Convert(File15, target, dtype, Options(yaml: true));
        using var single = StableDiffusionPipeline.FromSingleFile(File15, Exact, Options(yaml: true));
        using var converted = StableDiffusionPipeline.FromPretrained(target, Exact with { DType = dtype });
        if (dtype == ScalarType.Float32)
            AssertSameWeights(single, converted);
        else
            using (var half = StableDiffusionPipeline.FromSingleFile(File15, Exact with { DType = ScalarType.Float16 }, Options(yaml: true)))
                AssertSameWeights(half, converted);
        Assert.Equal(System.Text.Json.JsonSerializer.Serialize(single.Unet.Config), System.Text.Json.JsonSerializer.Serialize(converted.Unet.Config));
        Assert.Equal(System.Text.Json.JsonSerializer.Serialize(single.Vae.Config), System.Text.Json.JsonSerializer.Serialize(converted.Vae.Config));
        Assert.Equal(System.Text.Json.JsonSerializer.Serialize(single.TextEncoder.Config), System.Text.Json.JsonSerializer.Serialize(converted.TextEncoder.Config));
        Assert.Equal("PNDMScheduler", converted.SchedulerConfig.ClassName);
        Assert.Throws<IOException>(() => DiffusersFolderWriter.Convert(File15, target, dtype, Options(yaml: true)));
    }
}

/// <summary>The tokenizer shipped for single files gives the tokens of the models' own tokenizer folders.</summary>
public class BundledTokenizerTests
{
    static readonly string[] Prompts = ["a photograph of an astronaut riding a horse", "wow!!! hello!", "Ünïcödé — 東京 🐱", ""];

    [Theory]
    [InlineData("Sd1", "clip-tokenizer")]
    [InlineData("Sd2", "models/tiny-sd2/tokenizer")]
    public void Bundled_tokenizer_matches_the_folder(string variant, string folder)
    {
        var bundled = SharpDiffusion.Text.ClipTokenizer.Bundled(Enum.Parse<SharpDiffusion.Text.ClipTokenizer.BundledVariant>(variant));
        var expected = SharpDiffusion.Text.ClipTokenizer.FromDirectory(Golden.Path(folder.Split('/')));
        Assert.Equal(expected.PadTokenId, bundled.PadTokenId);
        Assert.Equal(expected.VocabSize, bundled.VocabSize);
        foreach (var prompt in Prompts)
            Assert.Equal(expected.Encode(prompt), bundled.Encode(prompt));
    }
}
