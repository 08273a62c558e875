using System.Globalization;
using SharpDiffusion.Loading;
using SharpDiffusion.Training;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Training;

/// <summary>--dtype bfloat16: the frozen base in bf16, the LoRA and AdamW in float32; the loss stays finite and falls.</summary>
[Collection(ProcessWide.Settings)]
public class LoraBf16BaseTests(ITestOutputHelper output)
{
    const int Steps = 10;

    [Fact]
    public void A_bfloat16_base_trains_a_float32_lora_whose_loss_falls()
    {
        TorchRuntime.Initialize(1);
        using var dir = new TempDir();
        ShapeLoraDemo.WriteDataset(Path.Combine(dir.Path, "images"), 6, ShapeKind.Cross);
        LoraTrainingOptions Options(string name, double lr) => new()
        {
            Model = ShortLoraRuns.ShippedModel, Images = Path.Combine(dir.Path, "images"), Output = dir.File(name + ".safetensors"),
            Rank = 4, Alpha = 2, Steps = Steps, Batch = 2, Resolution = ShortLoraRuns.Resolution, LearningRate = lr, MinSnrGamma = 5,
            BaseDType = ScalarType.BFloat16, LossCsv = dir.File(name + ".csv"),
        };
        var clock = System.Diagnostics.Stopwatch.StartNew();
        new LoraTrainer(Options("bf16", 5e-3)).Run();
        output.WriteLine($"{Steps} steps with a bf16 base in {clock.Elapsed.TotalSeconds:F1} s, model loading included");
        new LoraTrainer(Options("control", 1e-9)).Run();

        List<double> Losses(string name) => File.ReadAllLines(dir.File(name + ".csv")).Skip(1)
            .Select(l => double.Parse(l.Split(',')[1], CultureInfo.InvariantCulture)).ToList();
        var trained = Losses("bf16");
        var control = Losses("control");
        Assert.All(trained, l => Assert.True(double.IsFinite(l), $"loss {l}"));
        double late = trained.Skip(Steps / 2).Average(), baseline = control.Skip(Steps / 2).Average();
        output.WriteLine($"steps {Steps / 2 + 1}-{Steps}: loss {late:F5} trained vs {baseline:F5} control on the same batches ({late / baseline - 1:P1})");
        Assert.True(late < 0.97 * baseline, $"the loss did not fall with a bf16 base: {baseline} -> {late}");

        using var file = SafetensorsFile.Open(dir.File("bf16.safetensors"));
        Assert.Equal("bf16", file.Metadata["ss_mixed_precision"]);
        Assert.All(file.Tensors.Values, e => Assert.Equal("F32", e.DType));    // the LoRA itself stays float32
    }
}
