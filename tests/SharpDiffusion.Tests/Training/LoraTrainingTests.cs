using System.Diagnostics;
using System.Globalization;
using SharpDiffusion.Adapters;
using SharpDiffusion.Cli;
using SharpDiffusion.Loading;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Training;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Training;

// One collection: these tests set libtorch's global thread count, and resumed and repeated runs must match byte for byte.
[Collection(ProcessWide.Settings)]
public class LoraTrainingTests(ITestOutputHelper output)
{
    static string ShippedModel => DefaultModel.Locate() ?? throw new InvalidOperationException("models/sharp-shapes not found");

    static LoraTrainingOptions Shortened(string root, int steps, string? resume = null, double lr = 5e-3) => new()
    {
        Model = ShippedModel,
        Images = Path.Combine(root, "..", "images"),
        Output = Path.Combine(root, "cross.safetensors"),
        Rank = 4,
        Alpha = 2,
        Steps = steps,
        Batch = 4,
        LearningRate = lr,
        TrainTextEncoder = true,
        MinSnrGamma = 5,
        CheckpointEvery = 4,
        Resume = resume,
        LossCsv = Path.Combine(root, "loss.csv"),
    };

    static List<double> ReadLosses(string csv) =>
        File.ReadAllLines(csv).Skip(1).Select(l => double.Parse(l.Split(',')[1], CultureInfo.InvariantCulture)).ToList();

    [Fact]
    public void Shortened_cross_lora_lowers_the_loss_resumes_byte_equal_and_round_trips_through_the_lora_loader()
    {
        TorchRuntime.Initialize(1);
        using var dir = new TempDir();
        CrossLoraDemo.WriteDataset(Path.Combine(dir.Path, "images"), 8);
        string Run(string name) => Directory.CreateDirectory(Path.Combine(dir.Path, name)).FullName;
        string straight = Run("straight"), again = Run("again"), halves = Run("halves"), frozen = Run("frozen");

        var clock = Stopwatch.StartNew();
        new LoraTrainer(Shortened(straight, 12)).Run();
        output.WriteLine($"12 steps of batch 4 (rank 4, UNet and text encoder) in {clock.Elapsed.TotalSeconds:F1} s, model loading included");
        new LoraTrainer(Shortened(again, 12)).Run();
        // Interrupted at step 9 (its last checkpoint is step 8), then resumed by a new trainer from that checkpoint.
        using (var stop = new CancellationTokenSource())
        {
            var interrupted = new LoraTrainer(Shortened(halves, 12), p => { if (p.Step == 9) stop.Cancel(); });
            Assert.Throws<OperationCanceledException>(() => interrupted.Run(stop.Token));
        }
        string checkpoint = Shortened(halves, 12).CheckpointPath;
        using (var file = SafetensorsFile.Open(checkpoint)) Assert.Equal("8", file.Metadata["train_lora_step"]);
        new LoraTrainer(Shortened(halves, 12, resume: checkpoint)).Run();

        string lora = Shortened(straight, 12).Output;
        Assert.Equal(File.ReadAllBytes(lora), File.ReadAllBytes(Shortened(again, 12).Output));   // one seed, one file
        Assert.Equal(File.ReadAllBytes(lora), File.ReadAllBytes(Shortened(halves, 12).Output));  // resumed == uninterrupted
        Assert.Equal(ReadLosses(Path.Combine(straight, "loss.csv")), ReadLosses(Path.Combine(halves, "loss.csv")));

        // The loss falls: every step draws its pictures, noise and timesteps from (seed, step), so a run whose LoRA barely
        // moves (lr 1e-9) sees the same batches; compare the last half of the steps pair by pair.
        new LoraTrainer(Shortened(frozen, 12, lr: 1e-9)).Run();
        var trained = ReadLosses(Path.Combine(straight, "loss.csv")).Skip(6).ToList();
        var baseline = ReadLosses(Path.Combine(frozen, "loss.csv")).Skip(6).ToList();
        output.WriteLine($"steps 7-12: loss {trained.Average():F5} trained vs {baseline.Average():F5} base model, same batches; " +
            $"lower on {trained.Zip(baseline).Count(p => p.First < p.Second)} of {trained.Count}");
        // Paired on identical batches, so a few percent is signal, not noise (measured: 6% lower after 6 steps).
        Assert.True(trained.Average() < 0.97 * baseline.Average(), $"the loss did not fall: {baseline.Average()} -> {trained.Average()}");

        AssertMetadata(lora);
        AssertRoundTrip(lora, Path.Combine(dir.Path, "cross-peft.safetensors"));
    }

    static void AssertMetadata(string lora)
    {
        using var file = SafetensorsFile.Open(lora);
        var m = file.Metadata;
        Assert.Equal("4", m["ss_network_dim"]);
        Assert.Equal("2", m["ss_network_alpha"]);
        Assert.Equal("12", m["ss_steps"]);
        Assert.Equal("(64, 64)", m["ss_resolution"]);
        Assert.Equal(ModelHash.Compute(Path.Combine(ShippedModel, "unet", "diffusion_pytorch_model.safetensors")), m["ss_sd_model_hash"]);
        Assert.Contains("\"1_cross\":{", m["ss_tag_frequency"]);
        Assert.Contains(file.Tensors.Keys, k => k.StartsWith("lora_te_text_model_encoder_layers_0_self_attn_q_proj.", StringComparison.Ordinal));
        Assert.Contains(file.Tensors.Keys, k => k.EndsWith("attn2_to_out_0.alpha", StringComparison.Ordinal));
        Assert.DoesNotContain(m.Keys, k => k.StartsWith("train_lora_", StringComparison.Ordinal)); // checkpoint bookkeeping stays out
    }

    /// <summary>Our LoRA loader merges every layer of the file into the weight it names, W' = W + (alpha/rank)·up·down,
    /// and the PEFT file convert-lora writes merges to the same weights.</summary>
    void AssertRoundTrip(string lora, string peft)
    {
        Assert.Equal(0, SharpDiffusion.Cli.Cli.Run(["convert-lora", "--lora", lora, "--to", "diffusers", "--output", peft]));
        using var pipe = StableDiffusionPipeline.FromPretrained(ShippedModel);
        var unet = pipe.Denoiser.Weights.Module;
        var te = pipe.Components.Conditioner.Encoders[0].Module;
        var weights = unet.named_parameters().Select(p => ("lora_unet_", p)).Concat(te.named_parameters().Select(p => ("lora_te_", p)))
            .ToDictionary(x => x.Item1 + x.p.name.Replace(".weight", "").Replace('.', '_'), x => x.p.parameter.detach().clone());
        using var file = SafetensorsFile.Open(lora);
        var stems = file.Tensors.Keys.Where(k => k.EndsWith(".alpha", StringComparison.Ordinal)).Select(k => k[..^6]).ToList();
        Assert.Equal(file.Tensors.Count, 3 * stems.Count);

        using var kohya = LoraFile.Load(lora);
        using var diffusers = LoraFile.Load(peft);
        Assert.Equal(stems.Count, kohya.Layers.Count);
        Assert.Equal(stems.Count, diffusers.Layers.Count);
        Dictionary<string, Tensor> Merged(LoraFile f)
        {
            using var merger = LoraMerger.Apply([new LoraWeight(f)], unet, te);
            Assert.Equal(stems.Count, merger.PatchedCount);
            return unet.named_parameters().Select(p => ("lora_unet_", p)).Concat(te.named_parameters().Select(p => ("lora_te_", p)))
                .ToDictionary(x => x.Item1 + x.p.name.Replace(".weight", "").Replace('.', '_'), x => x.p.parameter.detach().clone());
        }
        var viaKohya = Merged(kohya);
        var viaPeft = Merged(diffusers);
        double worst = 0, worstPeft = 0;
        foreach (var stem in stems)
        {
            using var down = file.Load(stem + ".lora_down.weight");
            using var up = file.Load(stem + ".lora_up.weight");
            double scale = file.Load(stem + ".alpha").item<float>() / down.shape[0];
            using var expected = weights[stem] + up.matmul(down) * scale;
            worst = Math.Max(worst, (viaKohya[stem] - expected).abs().max().item<float>());
            worstPeft = Math.Max(worstPeft, (viaPeft[stem] - viaKohya[stem]).abs().max().item<float>());
            Assert.True(up.abs().max().item<float>() > 0, $"{stem} was not trained");
        }
        output.WriteLine($"{stems.Count} layers; merged vs W + (alpha/r)·up·down max |Δ| {worst:G3}; PEFT vs kohya {worstPeft:G3}");
        Assert.True(worst < 1e-5, $"merged weights differ from W + (alpha/rank)·up·down by {worst}");
        Assert.True(worstPeft < 1e-5, $"the PEFT file merges differently by {worstPeft}");
    }

    [Fact]
    public void Bad_input_is_refused_in_one_line_before_any_work()
    {
        using var dir = new TempDir();
        var empty = Directory.CreateDirectory(Path.Combine(dir.Path, "empty")).FullName;
        var o = new LoraTrainingOptions { Model = ShippedModel, Images = empty, Output = dir.File("x.safetensors") };
        var e = Assert.Throws<ArgumentException>(() => new LoraTrainer(o).Run());
        Assert.Contains("holds no pictures", e.Message);

        CrossLoraDemo.WriteDataset(Path.Combine(dir.Path, "images"), 2);
        File.Delete(Path.Combine(dir.Path, "images", "1_cross", "cross_001.txt"));
        var folder = KohyaImageFolder.Open(Path.Combine(dir.Path, "images"));
        Assert.Equal("cross", folder.Pictures[1].Caption);
        Assert.Contains("captioned \"cross\" from the folder name", Assert.Single(folder.Warnings));

        var images = Path.Combine(dir.Path, "images");
        var tooLarge = Assert.Throws<ArgumentException>(() => new LoraTrainer(o with { Images = images, Rank = 1000 }).Run());
        Assert.Contains("is larger than the layer", tooLarge.Message);
        Assert.DoesNotContain('\n', tooLarge.Message);

        var sdxl = Assert.Throws<NotSupportedException>(() => new LoraTrainer(o with { Images = images, Model = Golden.Path("models", "tiny-sdxl") }).Run());
        Assert.Contains("train-lora trains SD 1.x/2.x models", sdxl.Message);
        Assert.False(File.Exists(o.Output));
    }

    [Fact]
    public void V_prediction_model_trains_a_lora_the_loader_applies()
    {
        TorchRuntime.Initialize(1);
        using var dir = new TempDir();
        CrossLoraDemo.WriteDataset(Path.Combine(dir.Path, "images"), 4);
        var o = new LoraTrainingOptions
        {
            Model = Golden.Path("models", "tiny-sd2"), Images = Path.Combine(dir.Path, "images"), Output = dir.File("v.safetensors"),
            Rank = 2, Steps = 3, Batch = 2, Resolution = 64,
        };
        new LoraTrainer(o).Run();
        using var file = SafetensorsFile.Open(o.Output);
        Assert.Equal("True", file.Metadata["ss_v_parameterization"]);
        using var lora = LoraFile.Load(o.Output);
        using var pipe = StableDiffusionPipeline.FromPretrained(o.Model);
        using var merger = pipe.Components.MergeLoras([new LoraWeight(lora)]);
        Assert.Equal(lora.Layers.Count, merger.PatchedCount);
    }
}
