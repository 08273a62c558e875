using SharpDiffusion.Conditioning;
using SharpDiffusion.Families.Flux;
using SharpDiffusion.Loading;
using SharpDiffusion.Loading.SingleFile;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Schedulers;
using SharpDiffusion.Tests.Loading;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Flux;

/// <summary>A Flux pipeline assembled from component files as stable-diffusion.cpp and ComfyUI users keep them
/// (<see cref="FluxComponentFiles"/>: flux1-*.safetensors, clip_l, t5xxl_fp16 with its spiece.model, ae.safetensors),
/// written from the golden folders by <see cref="FluxComponentFileWriter"/>, gives the golden pipeline cases; each
/// missing part is refused in one line naming the file to download.</summary>
public class FluxComponentFilesTests(ITestOutputHelper output)
{
    [Fact]
    public void The_inverse_key_map_writes_the_golden_bfl_file_bit_for_bit()
    {
        var written = FluxComponentFileWriter.BflTransformer("tiny-flux-dev");
        using var golden = SafetensorsFile.Open(FluxGolden.SingleFile(FluxGolden.BflFile));
        Assert.Equal(golden.Tensors.Keys.Order(StringComparer.Ordinal), written.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, value) in written)
        {
            using var expected = golden.Load(name);
            Assert.True(Golden.MaxAbsDiff(value, expected) == 0, $"{name} differs");
            value.Dispose();
        }
        output.WriteLine($"{written.Count} BFL tensors identical to {FluxGolden.BflFile}");
    }

    public static IEnumerable<object[]> Cases() =>
    [
        ["tiny-flux-dev", "dev_96x128_seed12_6steps_g3.5", ""],
        ["tiny-flux-schnell", "schnell_64x96_seed6_4steps", BflKeyMap.ComfyPrefix],
    ];

    [Theory]
    [MemberData(nameof(Cases))]
    public void Pipeline_from_component_files_matches_diffusers(string model, string name, string prefix)
    {
        using var dir = new TempDir();
        var files = FluxComponentFileWriter.Write(model, dir.Path, prefix);
        using var pipeline = StableDiffusionPipeline.Load(files.Transformer, new LoadOptions { LowMemory = true },
            new SingleFileOptions { TextEncoders = [files.Clip, files.T5], Vae = files.Vae, DiffusersConfig = files.Config });
        Assert.IsType<FluxFamily>(pipeline.Family);
        var conditioner = Assert.IsType<FluxTextConditioner>(pipeline.Conditioner);
        bool dev = model.EndsWith("dev", StringComparison.Ordinal);
        Assert.Equal(FluxDefaults.For(dev).MaxSequenceLength, conditioner.DefaultMaxSequenceLength);
        // The scheduler config is BFL's for the kind the tensors say (the config folder has none).
        Assert.IsType<FlowMatchEulerDiscreteScheduler>(pipeline.CreateScheduler(null));
        var folderScheduler = SchedulerConfig.Load(Path.Combine(FluxGolden.ModelDir(model), "scheduler", "scheduler_config.json"));
        Assert.Equal(folderScheduler.GetBool("use_dynamic_shifting", false), pipeline.SchedulerConfig.GetBool("use_dynamic_shifting", true));
        foreach (string key in (string[])["shift", "base_shift", "max_shift", "base_image_seq_len", "max_image_seq_len"])
            Assert.Equal(folderScheduler.GetDouble(key, double.NaN), pipeline.SchedulerConfig.GetDouble(key, double.NaN));

        var golden = FluxGolden.Load(model, name);
        using var _ = inference_mode();
        var summary = SharpDiffusion.Tests.Pipelines.PipelineParityTests.GenerateAndCompare(pipeline, FluxGolden.Options(FluxGolden.Info(model, name)), golden);
        // LowMemory: CLIP-L and T5 were each read for the encode and freed after, never held together.
        Assert.True(conditioner.ReadsEncodersOneAtATime);
        Assert.All(conditioner.Encoders, e => Assert.False(e.Resident));
        output.WriteLine($"{model}/{name} from component files: {summary}");
    }

    [Theory]
    [InlineData("clip", "--text-encoder clip_l.safetensors")]
    [InlineData("t5", "--text-encoder t5xxl_fp16.safetensors")]
    [InlineData("vae", "--vae ae.safetensors")]
    [InlineData("spiece", "tokenizer_2/spiece.model")]
    [InlineData("clip_g", "CLIP-G (bigG)")]
    public void Each_missing_component_is_refused_in_one_line_naming_the_file(string missing, string expected)
    {
        using var dir = new TempDir();
        var files = FluxComponentFileWriter.Write("tiny-flux-schnell", dir.Path);
        if (missing == "spiece") File.Delete(Path.Combine(Path.GetDirectoryName(files.T5)!, "spiece.model"));
        string clipG = dir.File("clip_g.safetensors");
        if (missing == "clip_g") Sd3FileWriter.WriteTextEncoder("tiny-sd3", "text_encoder_2", clipG);
        var options = new SingleFileOptions
        {
            TextEncoders = missing switch { "clip" => [files.T5], "t5" => [files.Clip], "clip_g" => [files.Clip, files.T5, clipG], _ => [files.Clip, files.T5] },
            Vae = missing == "vae" ? null : files.Vae,
            DiffusersConfig = files.Config,
        };
        var e = Assert.ThrowsAny<Exception>(() => StableDiffusionPipeline.Load(files.Transformer, new LoadOptions(), options));
        output.WriteLine(e.Message);
        Assert.IsNotType<NullReferenceException>(e);
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Defaults_follow_the_weights_dev_or_schnell()
    {
        Assert.Equal(FluxDefaults.Dev, FluxDefaults.Of(FluxGolden.ModelDir("tiny-flux-dev")));
        Assert.Equal(FluxDefaults.Schnell, FluxDefaults.Of(FluxGolden.ModelDir("tiny-flux-schnell")));
        Assert.Equal(FluxDefaults.Dev, FluxDefaults.Of(FluxGolden.SingleFile(FluxGolden.GgufFile)));
        Assert.Equal(FluxDefaults.Dev, FluxDefaults.Of(FluxGolden.ModelDir("tiny-flux-schnell"), FluxGolden.SingleFile(FluxGolden.Fp8File)));
        Assert.Null(FluxDefaults.Of(Golden.Path("v3", "models", "tiny-sd3")));
        // Each golden case was made with its model's T5 length (the info's max_sequence_length).
        Assert.Equal(FluxGolden.Info("tiny-flux-dev", "dev_96x128_seed12_6steps_g3.5").GetProperty("kwargs").GetProperty("max_sequence_length").GetInt32(), FluxDefaults.Dev.MaxSequenceLength);
        Assert.Equal(FluxGolden.Info("tiny-flux-schnell", "schnell_64x96_seed6_4steps").GetProperty("kwargs").GetProperty("max_sequence_length").GetInt32(), FluxDefaults.Schnell.MaxSequenceLength);
    }
}
