using SharpDiffusion.Imaging;
using SharpDiffusion.Loading;
using SharpDiffusion.Models.Vae;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Schedulers;
using SharpDiffusion.Tests.Cli;
using SharpDiffusion.Tests.Server;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.FewStep;

/// <summary>
/// Issue 25 item 3: <c>generate --preview FILE.png --preview-vae TAESD</c>. The preview written at a step is the TAESD
/// decode of the clean latents the model predicts there. The test recomputes that x̂₀ from the Euler trajectory itself,
/// x̂₀ = x_i − σ_i·(x_{i+1} − x_i)/(σ_{i+1} − σ_i), and decodes it with the AutoencoderTiny module directly.
/// </summary>
[Collection(ProcessWide.Settings)]
public class PreviewVaeTests(ITestOutputHelper output)
{
    static string SmallSd15 => Golden.Path("models", "small-sd15");
    static string TinyTaesd => Golden.Path("v3", "models", "tiny-taesd");

    [Fact]
    public void The_preview_is_the_taesd_decode_of_the_steps_clean_estimate()
    {
        const int steps = 4, every = 3;   // one preview, after step index 2: not the last step, where x̂₀ is the result
        using var dir = new TempDir();
        string preview = dir.File("preview.png"), image = dir.File("out.png");
        var (code, _, err) = GenerateCommandTests.Run("generate", "--model", SmallSd15, "--prompt", "a red cube", "--seed", "5",
            "--steps", $"{steps}", "--guidance", "7", "--scheduler", "euler", "--width", "64", "--height", "64",
            "--output", image, "--preview", preview, "--preview-every", $"{every}", "--preview-vae", TinyTaesd);
        Assert.True(code == 0, err);
        var (w, h, rgb) = PngFile.Decode(preview);
        Assert.Equal((64, 64), (w, h));   // full resolution, not the 8×8 latent map
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp"));

        // The same run in the library, keeping the latents after every step.
        using var pipeline = StableDiffusionPipeline.Load(SmallSd15);
        var trajectory = new List<Tensor>();
        using (var result = pipeline.Generate(new GenerationOptions
        {
            Prompts = ["a red cube"], Seed = 5, NumInferenceSteps = steps, GuidanceScale = 7, Scheduler = "euler", Width = 64, Height = 64,
        }, onStepEnd: (_, latents) => trajectory.Add(latents.clone().DetachFromDisposeScope())))
        {
            Assert.Equal(steps, trajectory.Count);
        }
        var scheduler = SchedulerFactory.Create("euler", pipeline.SchedulerConfig);
        scheduler.SetTimesteps(steps);
        var sigmas = scheduler.Sigmas!;
        int i = every - 1;
        using var inference = inference_mode();
        var before = trajectory[i - 1];          // x_i: the latents the step started from
        var after = trajectory[i];               // x_{i+1}
        var x0 = before - sigmas[i] * (after - before) / (sigmas[i + 1] - sigmas[i]);    // [1, 4, 8, 8]

        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(TinyTaesd, "config.json")))!.AsObject();
        using var taesd = AutoencoderTinyFiles.LoadFolder(TinyTaesd, config);
        Assert.Equal(1.0, taesd.Config.ScalingFactor);   // TAESD reads the denoiser's latents as they are
        var decoded = (taesd.Decode(x0) / 2 + 0.5).clamp(0, 1);                            // [1, 3, 64, 64]
        var expected = (decoded * 255).round().to(ScalarType.Byte).permute(0, 2, 3, 1).contiguous().data<byte>().ToArray();
        int worst = expected.Zip(rgb, (e, a) => Math.Abs(e - a)).Max();
        double mean = expected.Zip(rgb, (e, a) => (double)Math.Abs(e - a)).Average();
        output.WriteLine($"preview vs TAESD decode of the step's x̂₀: max {worst} levels, mean {mean:F3}");
        Assert.True(worst <= 1, $"the preview differs from the TAESD decode of x̂₀ by {worst} levels");
        // It is that step's picture, not the final one.
        var (_, _, final) = PngFile.Decode(image);
        Assert.True(final.Zip(rgb, (a, b) => Math.Abs(a - b)).Max() > 1, "the preview is the final image");
        foreach (var t in trajectory) t.Dispose();
    }

    [Fact]
    public void Without_a_taesd_the_preview_is_the_cheap_latent_map()
    {
        using var dir = new TempDir();
        string preview = dir.File("p.png");
        var (code, _, err) = GenerateCommandTests.Run("generate", "--model", SmallSd15, "--prompt", "a cube", "--seed", "1", "--steps", "2",
            "--width", "64", "--height", "64", "--output", dir.File("o.png"), "--preview", preview);
        Assert.True(code == 0, err);
        var (w, h, _) = PngFile.Decode(preview);
        Assert.Equal((8, 8), (w, h));   // one pixel per latent
    }

    [Fact]
    public void Bad_preview_options_are_one_line_errors_before_any_work()
    {
        using var dir = new TempDir();
        var (code, _, err) = GenerateCommandTests.Run("generate", "--model", SmallSd15, "--prompt", "x", "--steps", "1",
            "--output", dir.File("o.png"), "--preview-vae", TinyTaesd);
        Assert.NotEqual(0, code);
        Assert.Contains("--preview FILE.png", err);
        Assert.Single(err.Trim().Split('\n'));
        // A TAESD of 1/8 latents for the shipped model, whose VAE works at 1/4: refused naming both.
        (code, _, err) = GenerateCommandTests.Run("generate", "--model", Repo.ShippedModel, "--prompt", "x", "--steps", "1",
            "--output", dir.File("o.png"), "--preview", dir.File("p.png"), "--preview-vae", TinyTaesd);
        Assert.NotEqual(0, code);
        Assert.Contains("1/8", err);
        Assert.Contains("1/4", err);
        Assert.Single(err.Trim().Split('\n'));
        Assert.False(File.Exists(dir.File("o.png")));
    }
}
