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

/// <summary>
/// The shortened training the checks below share, run once per test class (it is the suite's longest test otherwise):
/// the shipped model at a quarter of its area, a few steps of batch 2, UNet and text encoder, trained straight through,
/// again with the same seed, interrupted and resumed, and with a learning rate too small to move the LoRA (the control).
/// </summary>
public sealed class ShortLoraRuns : IDisposable
{
    public const int Steps = 10, Resolution = 32, CheckpointEvery = 3, InterruptAt = 8;
    readonly TempDir _dir = new();
    public string Straight { get; }
    public string Again { get; }
    public string Halves { get; }
    public string Frozen { get; }
    public string Root => _dir.Path;
    /// <summary>One line per run: its wall time.</summary>
    public List<string> Timings { get; } = [];
    public string InterruptedCheckpointStep { get; }

    public static string ShippedModel => DefaultModel.Locate() ?? throw new InvalidOperationException("models/sharp-shapes not found");

    public ShortLoraRuns()
    {
        TorchRuntime.Initialize(1);
        ShapeLoraDemo.WriteDataset(Path.Combine(Root, "images"), 6, ShapeKind.Cross);
        string Run(string name) => Directory.CreateDirectory(Path.Combine(Root, name)).FullName;
        (Straight, Again, Halves, Frozen) = (Run("straight"), Run("again"), Run("halves"), Run("frozen"));

        Timed("straight", () => new LoraTrainer(Options(Straight)).Run());
        Timed("again", () => new LoraTrainer(Options(Again)).Run());
        // Cancelled once step InterruptAt is reported (it stops before the next; its last checkpoint is at or before it),
        // then resumed from that checkpoint by a new trainer.
        Timed("interrupted", () =>
        {
            using var stop = new CancellationTokenSource();
            var interrupted = new LoraTrainer(Options(Halves), p => { if (p.Step == InterruptAt) stop.Cancel(); });
            Assert.Throws<OperationCanceledException>(() => interrupted.Run(stop.Token));
        });
        using (var file = SafetensorsFile.Open(Options(Halves).CheckpointPath)) InterruptedCheckpointStep = file.Metadata["train_lora_step"];
        Timed("resumed", () => new LoraTrainer(Options(Halves, resume: Options(Halves).CheckpointPath)).Run());
        Timed("control (lr 1e-9)", () => new LoraTrainer(Options(Frozen, lr: 1e-9)).Run());
    }

    void Timed(string name, Action run)
    {
        var clock = Stopwatch.StartNew();
        run();
        Timings.Add($"{name}: {clock.Elapsed.TotalSeconds:F1} s, model loading included");
    }

    public static LoraTrainingOptions Options(string root, string? resume = null, double lr = 5e-3) => new()
    {
        Model = ShippedModel,
        Images = Path.Combine(root, "..", "images"),
        Output = Path.Combine(root, "cross.safetensors"),
        Rank = 4,
        Alpha = 2,
        Steps = Steps,
        Batch = 2,
        Resolution = Resolution,
        LearningRate = lr,
        TrainTextEncoder = true,
        MinSnrGamma = 5,
        CheckpointEvery = CheckpointEvery,
        Resume = resume,
        LossCsv = Path.Combine(root, "loss.csv"),
    };

    public static List<double> ReadLosses(string root) =>
        File.ReadAllLines(Path.Combine(root, "loss.csv")).Skip(1).Select(l => double.Parse(l.Split(',')[1], CultureInfo.InvariantCulture)).ToList();

    public void Dispose() => _dir.Dispose();
}

// One collection: these tests set libtorch's global thread count, and resumed and repeated runs must match byte for byte.
[Collection(ProcessWide.Settings)]
public class LoraTrainingTests(ShortLoraRuns runs, ITestOutputHelper output) : IClassFixture<ShortLoraRuns>
{
    static string ShippedModel => ShortLoraRuns.ShippedModel;
    string Lora => ShortLoraRuns.Options(runs.Straight).Output;

    [Fact]
    public void Two_runs_with_one_seed_write_the_same_file()
    {
        foreach (var t in runs.Timings) output.WriteLine(t);
        var (a, b) = (File.ReadAllBytes(Lora), File.ReadAllBytes(ShortLoraRuns.Options(runs.Again).Output));
        output.WriteLine($"{a.Length} and {b.Length} bytes, {a.Zip(b).Count(p => p.First != p.Second)} differ");
        Assert.Equal(a, b);
    }

    [Fact]
    public void A_resumed_run_equals_an_uninterrupted_one_byte_for_byte()
    {
        int expectedCheckpoint = ShortLoraRuns.InterruptAt / ShortLoraRuns.CheckpointEvery * ShortLoraRuns.CheckpointEvery;
        Assert.Equal(expectedCheckpoint.ToString(CultureInfo.InvariantCulture), runs.InterruptedCheckpointStep);
        var (a, b) = (File.ReadAllBytes(Lora), File.ReadAllBytes(ShortLoraRuns.Options(runs.Halves).Output));
        output.WriteLine($"interrupted in step {ShortLoraRuns.InterruptAt}, resumed from step {runs.InterruptedCheckpointStep}: " +
            $"{a.Zip(b).Count(p => p.First != p.Second)} of {a.Length} bytes differ from the uninterrupted run's file");
        Assert.Equal(a, b);
        Assert.Equal(ShortLoraRuns.ReadLosses(runs.Straight), ShortLoraRuns.ReadLosses(runs.Halves));
    }

    [Fact]
    public void The_loss_falls_against_a_control_run_on_the_same_batches()
    {
        // Every step draws its pictures, noise and timesteps from (seed, step), so a run whose LoRA barely moves (lr 1e-9)
        // sees the same batches; compare the last half of the steps pair by pair.
        var trained = ShortLoraRuns.ReadLosses(runs.Straight).Skip(ShortLoraRuns.Steps / 2).ToList();
        var baseline = ShortLoraRuns.ReadLosses(runs.Frozen).Skip(ShortLoraRuns.Steps / 2).ToList();
        output.WriteLine($"steps {ShortLoraRuns.Steps / 2 + 1}-{ShortLoraRuns.Steps}: loss {trained.Average():F5} trained vs " +
            $"{baseline.Average():F5} control, same batches ({trained.Average() / baseline.Average() - 1:P1}); " +
            $"lower on {trained.Zip(baseline).Count(p => p.First < p.Second)} of {trained.Count}");
        // Paired on identical batches, so a few percent is signal, not noise.
        Assert.True(trained.Average() < 0.97 * baseline.Average(), $"the loss did not fall: {baseline.Average()} -> {trained.Average()}");
    }

    [Fact]
    public void The_file_has_kohya_metadata_and_round_trips_through_the_lora_loader()
    {
        AssertMetadata(Lora);
        AssertRoundTrip(Lora, Path.Combine(runs.Root, "cross-peft.safetensors"));
    }

    static void AssertMetadata(string lora)
    {
        using var file = SafetensorsFile.Open(lora);
        var m = file.Metadata;
        Assert.Equal("4", m["ss_network_dim"]);
        Assert.Equal("2", m["ss_network_alpha"]);
        Assert.Equal(ShortLoraRuns.Steps.ToString(CultureInfo.InvariantCulture), m["ss_steps"]);
        Assert.Equal($"({ShortLoraRuns.Resolution}, {ShortLoraRuns.Resolution})", m["ss_resolution"]);
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
        Assert.True(worst == 0, $"merged weights differ from W + (alpha/rank)·up·down by {worst}");
        Assert.True(worstPeft == 0, $"the PEFT file merges differently by {worstPeft}");
    }

    [Fact]
    public void Bad_input_is_refused_in_one_line_before_any_work()
    {
        using var dir = new TempDir();
        var empty = Directory.CreateDirectory(Path.Combine(dir.Path, "empty")).FullName;
        var o = new LoraTrainingOptions { Model = ShippedModel, Images = empty, Output = dir.File("x.safetensors") };
        var e = Assert.Throws<ArgumentException>(() => new LoraTrainer(o).Run());
        Assert.Contains("holds no pictures", e.Message);

        ShapeLoraDemo.WriteDataset(Path.Combine(dir.Path, "images"), 2, ShapeKind.Cross);
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
        ShapeLoraDemo.WriteDataset(Path.Combine(dir.Path, "images"), 4, ShapeKind.Cross);
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
