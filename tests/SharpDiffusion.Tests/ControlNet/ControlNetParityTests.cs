using System.Text.Json;
using SharpDiffusion.Conditioning;
using SharpDiffusion.Imaging;
using SharpDiffusion.Loading;
using SharpDiffusion.Loading.SingleFile;
using SharpDiffusion.Models.ControlNet;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Tests.Pipelines;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.ControlNet;

/// <summary>ControlNet against diffusers (golden README "Extension 3" and v3 "controlnet_sdxl"): the model's residuals, and
/// whole StableDiffusion(XL)ControlNetPipeline runs through the shared loop.</summary>
public class ControlNetParityTests(ITestOutputHelper output)
{
    internal const string Sd15ControlNet = "models/tiny-controlnet-small-sd15";
    const string SdxlControlNet = "v3/models/tiny-controlnet-sdxl";
    static readonly Dictionary<string, ControlNetModel> Models = new();

    internal static ControlNetModel Model(string folder)
    {
        lock (Models)
        {
            if (!Models.TryGetValue(folder, out var m))
                Models[folder] = m = ControlNetLoader.Load(Golden.Path(folder.Split('/')));
            return m;
        }
    }

    static RgbImage ControlImage => ImageFile.Load(Golden.Path("controlnet", "control_edges_64x64.png"));

    /// <summary>Every residual of one case: max |diff| over the 12 down residuals and the mid one.</summary>
    static double AssertResiduals(ControlNetResiduals actual, Dictionary<string, Tensor> golden, string down, string mid, double rel = 1e-4)
    {
        double worst = 0;
        for (int i = 0; i < actual.Down.Count; i++)
            worst = Math.Max(worst, Golden.AssertClose(actual.Down[i], golden[$"{down}{i}"], rel: rel, what: $"{down}{i}"));
        Assert.False(golden.ContainsKey($"{down}{actual.Down.Count}"), "fewer residuals than diffusers");
        return Math.Max(worst, Golden.AssertClose(actual.Mid, golden[mid], rel: rel, what: mid));
    }

    [Theory]
    [InlineData("t999", 999f, 1.0, false)]
    [InlineData("t500_5", 500.5f, 1.0, false)]
    [InlineData("t832_5_tensor", 832.5f, 1.0, false)]
    [InlineData("t1_scale0.45", 1f, 0.45, false)]
    [InlineData("per_sample", float.NaN, 1.0, false)]
    [InlineData("t500_guess_scale0.8", 500f, 0.8, true)]
    public void ResidualsMatchDiffusers(string name, float timestep, double scale, bool guess)
    {
        var golden = Golden.Load("controlnet", "controlnet_tiny-controlnet-small-sd15.safetensors");
        var model = Model(Sd15ControlNet);
        using var _ = inference_mode();
        using var t = float.IsNaN(timestep) ? golden["timesteps_per_sample"].alias() : tensor(timestep, ScalarType.Float32);
        using var residuals = model.Forward(golden["sample"], t, new TextConditioning(golden["encoder_hidden_states"]), golden["controlnet_cond"], scale, guess);
        double worst = AssertResiduals(residuals, golden, $"out_{name}.down.", $"out_{name}.mid");
        output.WriteLine($"{name}: max |diff| {worst:E2}");
    }

    [Fact]
    public void ConditioningEmbeddingMatchesDiffusers()
    {
        var golden = Golden.Load("controlnet", "controlnet_tiny-controlnet-small-sd15.safetensors");
        using var _ = inference_mode();
        using var embedded = Model(Sd15ControlNet).EmbedCondition(golden["controlnet_cond"]);
        output.WriteLine($"cond_embedding_out: max |diff| {Golden.AssertClose(embedded, golden["cond_embedding_out"], what: "cond_embedding_out"):E2}");
    }

    public static IEnumerable<object[]> Sd15Cases() =>
        GoldenManifest.Files("controlnet/pipelines/", ".safetensors").Select(f => new object[] { f });

    /// <summary>The pipeline call of a golden case with its ControlNet unit: scale, start/end and guess mode from the kwargs;
    /// 64×64 from the control image as diffusers takes it.</summary>
    static GenerationOptions WithControlNet(GenerationOptions options, JsonElement kwargs, ControlNetModel model)
    {
        double Get(string key, double fallback) => kwargs.TryGetProperty(key, out var v) ? v.GetDouble() : fallback;
        var unit = new ControlNetUnit
        {
            Model = model,
            Image = ControlImage,
            Scale = Get("controlnet_conditioning_scale", 1.0),
            Start = Get("control_guidance_start", 0.0),
            End = Get("control_guidance_end", 1.0),
            GuessMode = kwargs.TryGetProperty("guess_mode", out var g) && g.GetBoolean(),
        };
        return options with { ControlNets = [unit], Width = options.Width ?? 64, Height = options.Height ?? 64 };
    }

    [Theory]
    [MemberData(nameof(Sd15Cases))]
    public void Sd15PipelineMatchesDiffusers(string file)
    {
        var info = GoldenManifest.Info(file);
        var golden = Golden.Load(file.Split('/'));
        var pipeline = PipelineParityTests.Pipeline("models/small-sd15");
        var model = Model(Sd15ControlNet);
        var options = WithControlNet(PipelineParityTests.Options(info), info.GetProperty("kwargs"), model);
        var unit = options.ControlNets[0];

        // The keep schedule diffusers applied (its per-step scale / the unit's scale).
        var keep = golden["controlnet_keep"].data<float>().ToArray();
        Assert.Equal(keep, Enumerable.Range(0, keep.Length).Select(i => unit.Keeps(i, keep.Length) ? 1f : 0f).ToArray());

        // Step 0's ControlNet call on diffusers' own inputs: image as prepare_image made it, the ControlNet's sample.
        using (var _ = inference_mode())
        {
            using var image = ControlNetRun.ToTensor(ControlImage);
            var expectedImage = golden["control_image"];
            Assert.Equal(0, Golden.MaxAbsDiff(image.expand(expectedImage.shape), expectedImage));
            var sample = golden["controlnet_input_step0"];
            var embeds = unit.GuessMode ? golden["prompt_embeds"] : cat([golden["negative_prompt_embeds"], golden["prompt_embeds"]], 0);
            using var t = golden["timesteps_used"][0].to(ScalarType.Float32);
            using var residuals = model.Forward(sample, t, new TextConditioning(embeds), image.expand(sample.shape[0], -1, -1, -1),
                unit.Scale * keep[0], unit.GuessMode);
            // Within the per-step tolerance of the pipeline tests (rel 1e-3): the 1×1 residuals of a 12-step Euler run differ by 1.5e-4 relative.
            double worst = AssertResiduals(residuals, golden, "controlnet_down_block_res_samples_step0.", "controlnet_mid_block_res_sample_step0", rel: 1e-3);
            output.WriteLine($"{file}: step-0 residuals max |diff| {worst:E2}");
        }

        output.WriteLine($"{file}: {PipelineParityTests.GenerateAndCompare(pipeline, options, golden)}");
    }

    [Theory]
    [InlineData("euler_scale0.7_64x64_seed21_10steps_g6.safetensors")]
    [InlineData("euler_start0.3_end0.8_64x64_seed22_10steps_g6.safetensors")]
    public void SdxlPipelineMatchesDiffusers(string name)
    {
        string[] file = ["v3", "controlnet_sdxl", "tiny-sdxl", name];
        using var doc = JsonDocument.Parse(SafetensorsInfo(Golden.Path(file)));
        var info = doc.RootElement;
        var golden = Golden.Load(file);
        var pipeline = PipelineParityTests.Pipeline("models/tiny-sdxl");
        Assert.True(pipeline.IsXL);
        var options = WithControlNet(PipelineParityTests.Options(info), info.GetProperty("kwargs"), Model(SdxlControlNet));
        output.WriteLine($"{name}: {PipelineParityTests.GenerateAndCompare(pipeline, options, golden)}");
    }

    /// <summary>The v3 files carry how they were made in their own metadata ("info").</summary>
    static string SafetensorsInfo(string path)
    {
        using var file = SafetensorsFile.Open(path);
        return file.Metadata["info"];
    }

    [Fact]
    public void NoControlNetStepsLeaveTheUNetOutputUnchanged()
    {
        // Residuals at scale 0 (what diffusers gives outside start/end) leave the plain UNet's output (to rounding: the sums
        // may change the activations' memory layout and so the kernels' summation order); scale 1 changes it.
        var pipeline = PipelineParityTests.Pipeline("models/small-sd15");
        var golden = Golden.Load("controlnet", "controlnet_tiny-controlnet-small-sd15.safetensors");
        using var _ = inference_mode();
        var conditioning = new TextConditioning(golden["encoder_hidden_states"]);
        using var plain = pipeline.Unet.Forward(golden["sample"], 500f, conditioning);
        using var residuals = Model(Sd15ControlNet).Forward(golden["sample"], tensor(500f), conditioning, golden["controlnet_cond"], 0.0);
        using var zeroScaled = pipeline.Unet.Forward(golden["sample"], 500f, conditioning, control: residuals);
        output.WriteLine($"scale 0 vs no ControlNet: max |diff| {Golden.AssertClose(zeroScaled, plain, rel: 1e-5, abs: 1e-6, what: "scale 0"):E2}");
        using var full = Model(Sd15ControlNet).Forward(golden["sample"], tensor(500f), conditioning, golden["controlnet_cond"], 1.0);
        using var steered = pipeline.Unet.Forward(golden["sample"], 500f, conditioning, control: full);
        Assert.True(Golden.MaxAbsDiff(steered, plain) > 1e-3, "the residuals change the UNet's output");
    }
}
