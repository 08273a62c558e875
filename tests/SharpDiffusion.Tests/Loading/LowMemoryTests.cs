using SharpDiffusion.Adapters;
using SharpDiffusion.Imaging;
using SharpDiffusion.Loading;
using SharpDiffusion.Loading.SingleFile;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Tests.Lora;
using SharpDiffusion.Tests.Pipelines;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Loading;

/// <summary>
/// LoadOptions.LowMemory (the CLI's `generate`; `serve --low-memory`): each component's weights are in memory only while
/// it runs. The pictures are diffusers' (the golden cases, through the same parity checks), the text encoder and the
/// VAE are out of memory during the denoising loop, nothing is left in memory between calls, and a second call draws
/// the same picture again (a LoRA merged for one call does not stay).
/// </summary>
public class LowMemoryTests(ITestOutputHelper output)
{
    static readonly LoadOptions Low = new() { LowMemory = true };

    /// <summary>What is in memory while each step ends, and after the call: no weights.</summary>
    sealed class Residency(StableDiffusionPipeline pipeline)
    {
        public readonly List<string> DuringSteps = [];

        public void Step(int i, Tensor latents) =>
            DuringSteps.Add($"step {i}: text encoder {pipeline.Weights.TextEncoder.Resident}, UNet {pipeline.Weights.Unet.Resident}, VAE {pipeline.Weights.Vae.Resident}");

        public void AssertOnlyTheUNetDuringSteps()
        {
            Assert.NotEmpty(DuringSteps);
            Assert.All(DuringSteps, s => Assert.EndsWith("text encoder False, UNet True, VAE False", s));
        }
    }

    static void AssertNothingResident(StableDiffusionPipeline p, string when)
    {
        foreach (var (name, w) in new[] { ("text encoder", p.Weights.TextEncoder), ("UNet", p.Weights.Unet), ("VAE", p.Weights.Vae) })
        {
            Assert.True(w.ReleasedWhenIdle, $"{name}: not released when idle");
            Assert.False(w.Resident, $"{name} in memory {when}");
            Assert.All(w.Module.parameters(), t => Assert.Equal(TorchSharp.DeviceType.META, t.device_type));
        }
    }

    static byte[] Bytes(GenerationResult result)
    {
        using var u8 = ImageTensors.ToUInt8(result.ImageFloat);
        return u8.bytes.ToArray();
    }

    [Theory]
    [InlineData("pipelines/tiny-sd/pndm_default_seed42_20steps_g7.5.safetensors")]
    [InlineData("pipelines/small-sd15/ddim_negative_seed42_20steps_g7.5.safetensors")]
    [InlineData("sd2/pipelines/euler_vpred_rescale0.7_trailing_seed7_12steps_g9.safetensors")]
    public void Golden_pictures_with_weights_read_only_while_each_part_runs(string file)
    {
        var info = GoldenManifest.Info(file);
        var golden = Golden.Load(file.Split('/'));
        using var pipeline = StableDiffusionPipeline.FromPretrained(Golden.Path(info.GetProperty("model").GetString()!), Low);
        AssertNothingResident(pipeline, "after opening");
        var options = PipelineParityTests.Options(info);
        output.WriteLine($"{file}: {PipelineParityTests.GenerateAndCompare(pipeline, options, golden)}");
        AssertNothingResident(pipeline, "after the call");

        var residency = new Residency(pipeline);
        using var again = pipeline.Generate(options, onStepEnd: residency.Step);
        residency.AssertOnlyTheUNetDuringSteps();
        using var first = PipelineParityTests.Pipeline(info.GetProperty("model").GetString()!).Generate(options);
        Assert.Equal(Bytes(first), Bytes(again)); // the resident pipeline's picture, on a second call too
        AssertNothingResident(pipeline, "after the second call");
    }

    [Theory]
    [InlineData("img2img/small-sd15/ddim_s0.75_seed42_20steps_g7.5.safetensors", false)]
    [InlineData("inpaint/tiny-sd-inpaint/ddim_s0.8_seed42_20steps_g7.5.safetensors", true)]
    public void Img2img_and_inpainting_read_the_vae_for_the_image_and_again_for_the_decode(string file, bool inpaint)
    {
        var info = GoldenManifest.Info(file);
        var golden = Golden.Load(file.Split('/'));
        string folder = inpaint ? "inpaint" : "img2img";
        var options = PipelineParityTests.Options(info) with
        {
            Image = ImageFile.Load(Golden.Path(folder, "init_64x64.png")),
            MaskImage = inpaint ? ImageFile.Load(Golden.Path(folder, "mask_64x64.png")) : null,
            Strength = info.GetProperty("kwargs").GetProperty("strength").GetDouble(),
        };
        using var pipeline = StableDiffusionPipeline.FromPretrained(Golden.Path(info.GetProperty("model").GetString()!), Low);
        output.WriteLine($"{file}: {PipelineParityTests.GenerateAndCompare(pipeline, options, golden)}");
        AssertNothingResident(pipeline, "after the call");
    }

    [Fact]
    public void A_lora_merged_into_weights_that_leave_is_gone_at_the_next_call()
    {
        const string file = "lora/pipelines/lora_scale1.0_euler_seed42_10steps_g7.5.safetensors";
        var info = GoldenManifest.Info(file);
        var golden = Golden.Load(file.Split('/'));
        using var lora = LoraFile.Load(LoraGoldenTests.KohyaFile);
        using var pipeline = StableDiffusionPipeline.FromPretrained(Golden.Path("models", "small-sd15"), Low);
        var options = PipelineParityTests.Options(info) with { Loras = [new LoraWeight(lora, 1.0)] };
        output.WriteLine($"{file}: {PipelineParityTests.GenerateAndCompare(pipeline, options, golden)}");
        AssertNothingResident(pipeline, "after the LoRA call");

        const string plain = "lora/pipelines/nolora_euler_seed42_10steps_g7.5.safetensors";
        output.WriteLine($"{plain}: {PipelineParityTests.GenerateAndCompare(pipeline, PipelineParityTests.Options(GoldenManifest.Info(plain)), Golden.Load(plain.Split('/')))}");
    }

    [Fact]
    public void A_single_file_is_opened_again_for_each_part_and_draws_the_folder_picture()
    {
        const string file = "pipelines/small-sd15/pndm_default_seed42_20steps_g7.5.safetensors";
        var info = GoldenManifest.Info(file);
        var singleFile = new SingleFileOptions
        {
            OriginalConfig = Golden.Path("single_file", "v1-inference-small-sd15.yaml"),
            TextEncoderConfig = Path.Combine(Golden.Path("models", "small-sd15"), "text_encoder", "config.json"),
        };
        using var pipeline = StableDiffusionPipeline.FromSingleFile(Golden.Path("single_file", "small-sd15.safetensors"), Low, singleFile);
        AssertNothingResident(pipeline, "after opening");
        var residency = new Residency(pipeline);
        using (var result = pipeline.Generate(PipelineParityTests.Options(info), onStepEnd: residency.Step))
        {
            using var bytes = ImageTensors.ToUInt8(result.ImageFloat);
            using var diff = (bytes.to(ScalarType.Int32) - Golden.Load(file.Split('/'))["image_uint8"].to(ScalarType.Int32)).abs();
            Assert.True(diff.max().item<int>() <= 1, "the single file's picture differs from diffusers'");
        }
        residency.AssertOnlyTheUNetDuringSteps();
        AssertNothingResident(pipeline, "after the call");
    }

    [Fact]
    public void A_text_encoder_given_new_token_rows_stays_in_memory_and_the_rest_still_leaves()
    {
        using var pipeline = StableDiffusionPipeline.FromPretrained(Golden.Path("models", "small-sd15"), Low);
        Assert.False(pipeline.Weights.TextEncoder.Resident);
        pipeline.LoadTextualInversion(Golden.Path("textual_inversion", "cat-toy_learned_embeds.safetensors"));
        Assert.True(pipeline.Weights.TextEncoder.Resident);
        using var result = pipeline.Generate(new GenerationOptions { Prompts = ["a <cat-toy> on a table"], NumInferenceSteps = 2, Seed = 1, Width = 64, Height = 64 });
        Assert.True(pipeline.Weights.TextEncoder.Resident, "the text encoder with the embedding's rows left memory (its files do not have them)");
        Assert.False(pipeline.Weights.Unet.Resident);
        Assert.False(pipeline.Weights.Vae.Resident);
    }
}
