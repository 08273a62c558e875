using SharpDiffusion.Adapters;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Tests.Pipelines;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Lora;

/// <summary>golden/lora: the kohya LoRA on small-sd15 against diffusers 0.25 (load_lora_weights, scale 1.0 and 0.5,
/// unload_lora_weights). Uses its own pipeline: applying a LoRA changes the weights for the length of a call.</summary>
public class LoraGoldenTests(ITestOutputHelper output)
{
    const string Prompt = "a photograph of an astronaut riding a horse";
    internal static readonly string KohyaFile = Golden.Path("lora", "small-sd15_kohya_lora.safetensors");
    static readonly Lazy<StableDiffusionPipeline> OwnPipeline = new(() => StableDiffusionPipeline.FromPretrained(Golden.Path("models", "small-sd15")));
    static readonly object Gate = new();

    internal static Dictionary<string, Tensor> Snapshot(StableDiffusionPipeline p) =>
        p.Unet.named_parameters().Select(kv => ("unet." + kv.name, kv.parameter))
            .Concat(p.TextEncoder.named_parameters().Select(kv => ("te." + kv.name, kv.parameter)))
            .ToDictionary(kv => kv.Item1, kv => kv.Item2.detach().contiguous().clone());

    internal static void AssertBitIdentical(Dictionary<string, Tensor> before, StableDiffusionPipeline p)
    {
        var after = Snapshot(p);
        Assert.Equal(before.Keys.Order(), after.Keys.Order());
        foreach (var (name, tensor) in before)
            Assert.True(tensor.bytes.SequenceEqual(after[name].bytes), $"{name} changed (float32 bits)");
    }

    [Fact]
    public void Kohya_file_maps_every_key_onto_the_model()
    {
        using var lora = LoraFile.Load(KohyaFile);
        Assert.Equal(456 / 3, lora.Layers.Count);                              // down, up, alpha per layer
        Assert.All(lora.Layers, l => Assert.Equal(0.5, l.AlphaScale));         // alpha 2, rank 4
        lock (Gate)
        {
            var p = OwnPipeline.Value;
            using var merged = LoraMerger.Apply([new LoraWeight(lora)], p.Unet, p.TextEncoder);
            Assert.Equal(lora.Layers.Count, merged.PatchedCount);
        }
    }

    [Fact]
    public void Text_encoder_outputs_at_lora_scale_1_0_and_0_5_and_after_unload()
    {
        var golden = Golden.Load("lora", "lora_text_encoder_small-sd15.safetensors");
        using var lora = LoraFile.Load(KohyaFile);
        lock (Gate)
        {
            var p = OwnPipeline.Value;
            var before = Snapshot(p);
            using var _ = inference_mode();
            foreach (var scale in new[] { 1.0, 0.5 })
                using (LoraMerger.Apply([new LoraWeight(lora, scale)], p.Unet, p.TextEncoder))
                using (var embeds = p.EncodePrompt([Prompt]))
                {
                    double diff = Golden.AssertClose(embeds, golden[$"prompt_embeds_lora{scale:0.0}"], what: $"lora {scale}");
                    output.WriteLine($"scale {scale}: max |diff| {diff:E2}");
                }
            using (var embeds = p.EncodePrompt([Prompt]))
                Golden.AssertClose(embeds, golden["prompt_embeds_nolora"], what: "after unload");
            AssertBitIdentical(before, p);
        }
    }

    public static IEnumerable<object[]> Cases() => GoldenManifest.Files("lora/pipelines/", ".safetensors").Select(f => new object[] { f });

    [Theory]
    [MemberData(nameof(Cases))]
    public void Pipeline_matches_diffusers(string file)
    {
        var info = GoldenManifest.Info(file);
        var golden = Golden.Load(file.Split('/'));
        var kwargs = info.GetProperty("kwargs");
        double? scale = Path.GetFileName(file).StartsWith("nolora") ? null
            : kwargs.TryGetProperty("cross_attention_kwargs", out var cak) ? cak.GetProperty("scale").GetDouble() : 1.0;
        using var lora = LoraFile.Load(KohyaFile);
        var options = PipelineParityTests.Options(info) with { Loras = scale is double s ? [new LoraWeight(lora, s)] : [] };
        lock (Gate)
        {
            var p = OwnPipeline.Value;
            var before = Snapshot(p);
            using (var _ = inference_mode())
            using (LoraMerger.Apply(options.Loras, p.Unet, p.TextEncoder))
            using (var loraEmbeds = p.EncodePrompt(options.Prompts))
                Golden.AssertClose(loraEmbeds, golden["prompt_embeds"], what: "prompt_embeds");
            output.WriteLine($"{file}: {PipelineParityTests.GenerateAndCompare(p, options, golden)}");
            AssertBitIdentical(before, p);
        }
    }
}
