using SharpDiffusion.Cli.Bench;
using SharpDiffusion.Configuration;
using SharpDiffusion.Loading;
using SharpDiffusion.Models.Clip;
using SharpDiffusion.Models.T5;
using SharpDiffusion.Models.Transformers;
using SharpDiffusion.Pipelines;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Bench;

/// <summary>`bench --arch sd3.5-medium`'s random-weight folder, written here at the golden tiny-sd35's sizes: the loader opens
/// it as an SD3 model, it generates, and with LowMemory its T5 is out of memory once the prompts are encoded.</summary>
public class RandomSd3FolderTests
{
    static string Config(string component, string file = "config.json") =>
        File.ReadAllText(Golden.Path("v3", "models", "tiny-sd35", component, file));

    /// <summary>The tiny model's configs in place of the published ones (tests never write full size).</summary>
    static Sd3Architecture Tiny() => new("tiny SD3.5", Config("transformer"))
    {
        TextEncoderConfig = Config("text_encoder"), TextEncoder2Config = Config("text_encoder_2"), TextEncoder3Config = Config("text_encoder_3"),
        VaeConfig = Config("vae"), SchedulerConfig = Config("scheduler", "scheduler_config.json"),
    };

    static void Write(string dir) => RandomModelFolder.WriteSd3(dir, Tiny(), ScalarType.BFloat16,
        Golden.Path("v3", "models", "tiny-sd35", "tokenizer"), Golden.Path("v3", "models", "tiny-sd35", "tokenizer_3"));

    static GenerationOptions Options(int steps) => new() { Prompts = ["a red cube"], Width = 32, Height = 32, NumInferenceSteps = steps, Seed = 3 };

    [Fact]
    public void The_random_folder_loads_as_the_architecture_it_names_and_generates()
    {
        using var temp = new TempDir();
        Write(temp.Path);
        Assert.Equal("tiny SD3.5", RandomModelFolder.WrittenArchitecture(temp.Path));

        using var pipeline = StableDiffusionPipeline.Load(temp.Path, new LoadOptions());
        var written = SD3Transformer2DConfig.From(JsonConfig.Parse(Tiny().TransformerConfig));
        var loaded = ((SD3Transformer2DModel)pipeline.Denoiser.Weights.Module).Config;
        Assert.Equal(written with { DualAttentionLayers = [] }, loaded with { DualAttentionLayers = [] });
        Assert.Equal(written.DualAttentionLayers, loaded.DualAttentionLayers);
        Assert.Equal(3, pipeline.Conditioner.Encoders.Count);
        Assert.IsType<T5EncoderModel>(pipeline.Conditioner.Encoders[2].Module);
        Assert.All(pipeline.Conditioner.Encoders.Take(2), e => Assert.NotNull(((ClipTextModel)e.Module).Config.ProjectionDim));

        using var result = pipeline.Generate(Options(steps: 1));
        Assert.True(result.Latents.isfinite().all().item<bool>(), "the random weights give finite latents");
    }

    [Fact]
    public void A_complete_folder_is_marked_last_and_a_rewrite_starts_unmarked()
    {
        using var temp = new TempDir();
        Write(temp.Path);
        string marker = Path.Combine(temp.Path, RandomModelFolder.ArchitectureFile);
        Assert.True(new[] { "transformer", "text_encoder_3", "vae" }
            .All(c => Directory.GetFiles(Path.Combine(temp.Path, c)).All(f => File.GetLastWriteTimeUtc(f) <= File.GetLastWriteTimeUtc(marker))));
        Assert.Empty(Directory.GetFiles(temp.Path, "*.tmp", SearchOption.AllDirectories));
        Write(temp.Path); // over the old one, read-only tokenizer copies included
        Assert.Equal("tiny SD3.5", RandomModelFolder.WrittenArchitecture(temp.Path));
    }

    [Fact]
    public void With_low_memory_t5_is_out_of_memory_while_the_transformer_runs()
    {
        using var temp = new TempDir();
        Write(temp.Path);
        using var pipeline = StableDiffusionPipeline.Load(temp.Path, new LoadOptions { LowMemory = true });
        var t5 = pipeline.Conditioner.Encoders[2];
        var residentAtSteps = new List<bool>();
        using var result = pipeline.Generate(Options(steps: 2), onStepEnd: (_, _) => residentAtSteps.Add(t5.Resident));
        Assert.Equal([false, false], residentAtSteps);
        Assert.False(t5.Resident);
        Assert.All(t5.Module.parameters(), p => Assert.Equal(TorchSharp.DeviceType.META, p.device_type));
    }

    [Fact]
    public void The_published_architectures_hold_together_as_the_sd3_family_checks()
    {
        foreach (var (name, arch) in Sd3Architecture.Published)
        {
            var transformer = SD3Transformer2DConfig.From(JsonConfig.Parse(arch.TransformerConfig));
            var clipL = ClipTextConfig.From(JsonConfig.Parse(arch.TextEncoderConfig));
            var bigG = ClipTextConfig.From(JsonConfig.Parse(arch.TextEncoder2Config));
            var t5 = T5Config.From(JsonConfig.Parse(arch.TextEncoder3Config));
            Assert.True(clipL.ProjectionDim + bigG.ProjectionDim == transformer.PooledProjectionDim, $"{name}: pooled_projection_dim");
            Assert.True(t5.DModel == transformer.JointAttentionDim, $"{name}: T5 d_model is the joint_attention_dim");
            Assert.True(clipL.HiddenSize + bigG.HiddenSize <= transformer.JointAttentionDim, $"{name}: the CLIP states fit the joint width");
        }
    }
}
