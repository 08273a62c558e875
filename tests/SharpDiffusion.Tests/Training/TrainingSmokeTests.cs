using System.Globalization;
using SharpDiffusion.Loading;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Training;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Training;

// One collection: these tests set libtorch\'s global thread count, and the resume check compares floats across runs.
[Collection(ProcessWide.Settings)]
public class TrainingSmokeTests(ITestOutputHelper output)
{
    static string TokenizerDir => Golden.Path("clip-tokenizer");

    static TrainingOptions Micro(string root, int vaeSteps, int denoiserSteps) => new()
    {
        WorkDir = Path.Combine(root, "work"),
        OutputDir = Path.Combine(root, "model"),
        TokenizerDir = TokenizerDir,
        Spec = ShapesModelSpec.Micro,
        VaeSteps = vaeSteps,
        VaeBatch = 8,
        VaeLearningRate = 3e-3,
        DatasetSize = 128,
        DenoiserSteps = denoiserSteps,
        DenoiserBatch = 16,
        DenoiserLearningRate = 2e-3,
        WarmupSteps = 5,
        CheckpointEvery = 10,
        LossCsv = Path.Combine(root, "loss.csv"),
    };

    static List<(string Stage, int Step, double Loss)> ReadCurve(string path) => File.ReadAllLines(path).Skip(1)
        .Select(l => l.Split(','))
        .Select(f => (f[0], int.Parse(f[1], CultureInfo.InvariantCulture), double.Parse(f[2], CultureInfo.InvariantCulture)))
        .ToList();

    [Fact]
    public void Micro_training_lowers_the_loss_resumes_exactly_and_saves_a_loadable_model()
    {
        TorchRuntime.Initialize(1);
        using var straight = new TempDir();
        using var resumed = new TempDir();

        // One run of 40 + 30 steps, and the same run interrupted after 20 denoiser steps, then resumed by a new trainer.
        new ShapesTrainer(Micro(straight.Path, 40, 30)).Run();
        using var stop = new CancellationTokenSource();
        var interrupted = new ShapesTrainer(Micro(resumed.Path, 40, 30), p => { if (p.Stage == "denoiser" && p.Step == 20) stop.Cancel(); });
        Assert.Throws<OperationCanceledException>(() => interrupted.Run(stop.Token));
        Assert.Equal(20, TrainingState.Load(Path.Combine(resumed.Path, "work"))!.DenoiserStep);
        var state = new ShapesTrainer(Micro(resumed.Path, 40, 30)).Run();
        Assert.Equal(30, state.DenoiserStep);

        var curve = ReadCurve(Path.Combine(straight.Path, "loss.csv"));
        double Mean(string stage, Func<int, bool> which) => curve.Where(r => r.Stage == stage && which(r.Step)).Average(r => r.Loss);
        double vaeFirst = Mean("vae", s => s <= 5), vaeLast = Mean("vae", s => s > 35);
        double denFirst = Mean("denoiser", s => s <= 5), denLast = Mean("denoiser", s => s > 25);
        output.WriteLine($"VAE L1 {vaeFirst:F4} -> {vaeLast:F4}; denoiser MSE {denFirst:F4} -> {denLast:F4}");
        Assert.True(vaeLast < 0.95 * vaeFirst, $"VAE loss did not fall: {vaeFirst} -> {vaeLast}");
        Assert.True(denLast < denFirst, $"denoiser loss did not fall: {denFirst} -> {denLast}");

        // The resumed run repeats the straight run's steps 21..30 and ends with the same weights.
        var resumedCurve = ReadCurve(Path.Combine(resumed.Path, "loss.csv")).Where(r => r.Stage == "denoiser" && r.Step > 20).ToList();
        var straightTail = curve.Where(r => r.Stage == "denoiser" && r.Step > 20).ToList();
        Assert.Equal(straightTail.Count, resumedCurve.Count);
        for (int i = 0; i < straightTail.Count; i++)
            Assert.True(Math.Abs(straightTail[i].Loss - resumedCurve[i].Loss) < 1e-4, $"step {straightTail[i].Step}: straight {straightTail[i].Loss}, resumed {resumedCurve[i].Loss}");
        foreach (var (component, file) in new[] { ("unet", "diffusion_pytorch_model.safetensors"), ("text_encoder", "model.safetensors") })
        {
            using var a = SafetensorsFile.Open(Path.Combine(straight.Path, "model", component, file));
            using var b = SafetensorsFile.Open(Path.Combine(resumed.Path, "model", component, file));
            Assert.Equal(a.Tensors.Keys.Order(), b.Tensors.Keys.Order());
            foreach (var key in a.Tensors.Keys)
            {
                using var ta = a.Load(key).to(ScalarType.Float32);
                using var tb = b.Load(key).to(ScalarType.Float32);
                Assert.True(ta.allclose(tb, rtol: 1e-3, atol: 1e-4), $"{component}/{key} differs after resuming");
            }
        }

        // The folder is a diffusers model: fp16 weights, loaded by the ordinary pipeline with exact name/shape checks.
        string modelDir = Path.Combine(straight.Path, "model");
        using (var unetFile = SafetensorsFile.Open(Path.Combine(modelDir, "unet", "diffusion_pytorch_model.safetensors")))
            Assert.All(unetFile.Tensors.Values, e => Assert.Equal("F16", e.DType));
        using var pipe = StableDiffusionPipeline.FromPretrained(modelDir);
        Assert.Equal(64, pipe.DefaultSize);
        using var result = pipe.Generate(new GenerationOptions { Prompts = ["a red circle on a blue background"], NumInferenceSteps = 3, GuidanceScale = 4, Seed = 1 });
        Assert.Equal(64 * 64 * 3, result.Images[0].Rgb.Length);
        Assert.Equal(4.0, GenerationDefaults.Load(modelDir)!.GuidanceScale);
    }
}
