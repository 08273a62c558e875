using SharpDiffusion.Adapters;
using SharpDiffusion.Loading;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Tests.Pipelines;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Sdxl;

/// <summary>LoRA (kohya lora_unet_/lora_te1_/lora_te2_) and textual inversion (clip_l/clip_g) on SDXL, through the SD 1.x
/// machinery: W' = W + scale·(alpha/rank)·up·down in every targeted weight of the right model, restored exactly.</summary>
public class SdxlAdapterTests
{
    static Dictionary<string, Tensor> Weights(StableDiffusionPipeline p) =>
        new[] { ("unet", (TorchSharp.torch.nn.Module)p.Unet), ("te1", p.TextEncoder), ("te2", p.TextEncoder2!) }
            .SelectMany(m => m.Item2.named_parameters().Select(x => ($"{m.Item1}.{x.name}", x.parameter.detach().clone())))
            .ToDictionary(x => x.Item1, x => x.Item2);

    [Fact]
    public void AKohyaSdxlLoraChangesEachTargetedWeightByItsUpdateAndIsTakenOutExactly()
    {
        using var dir = new TempDir();
        using var generator = new Generator(5);
        // One layer per target: a UNet attention projection, a first- and a second-encoder MLP weight. Rank 2, alpha 1.
        var targets = new (string Key, string Weight, long Out, long In)[]
        {
            ("lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q", "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight", 64, 64),
            ("lora_te1_text_model_encoder_layers_0_mlp_fc1", "te1.text_model.encoder.layers.0.mlp.fc1.weight", 37, 32),
            ("lora_te2_text_model_encoder_layers_3_self_attn_k_proj", "te2.text_model.encoder.layers.3.self_attn.k_proj.weight", 32, 32),
        };
        var tensors = new Dictionary<string, Tensor>();
        foreach (var (key, _, outF, inF) in targets)
        {
            tensors[$"{key}.lora_down.weight"] = randn([2, inF], generator: generator);
            tensors[$"{key}.lora_up.weight"] = randn([outF, 2], generator: generator);
            tensors[$"{key}.alpha"] = tensor(1.0f);
        }
        string path = dir.File("xl_lora.safetensors");
        SafetensorsWriter.Save(path, tensors);

        var pipeline = PipelineParityTests.Pipeline("models/tiny-sdxl");
        var before = Weights(pipeline);
        using var lora = LoraFile.Load(path);
        const double scale = 0.8;
        using (var merged = LoraMerger.Apply([new LoraWeight(lora, scale)], pipeline.Unet, pipeline.TextEncoder, pipeline.TextEncoder2))
        {
            Assert.Equal(3, merged.PatchedCount);
            var after = Weights(pipeline);
            foreach (var (key, weight, _, _) in targets)
            {
                var update = tensors[$"{key}.lora_up.weight"].matmul(tensors[$"{key}.lora_down.weight"]) * (scale * 1.0 / 2);
                Golden.AssertClose(after[weight], before[weight] + update, what: weight);
            }
            int changed = after.Count(kv => !kv.Value.equal(before[kv.Key]).all().item<bool>());
            Assert.Equal(3, changed);
        }
        var restored = Weights(pipeline);
        Assert.All(before, kv => Assert.True(restored[kv.Key].equal(kv.Value).all().item<bool>(), $"{kv.Key} not restored"));
    }

    [Fact]
    public void AnSdxlLoraOnAnSd1ModelIsRefusedByName()
    {
        using var dir = new TempDir();
        string path = dir.File("xl.safetensors");
        SafetensorsWriter.Save(path, new Dictionary<string, Tensor>
        {
            ["lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight"] = zeros(2, 32),
            ["lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_up.weight"] = zeros(37, 2),
        });
        var sd1 = PipelineParityTests.Pipeline("models/tiny-sd");
        using var lora = LoraFile.Load(path);
        var e = Assert.Throws<InvalidDataException>(() => LoraMerger.Apply([new LoraWeight(lora, 1)], sd1.Unet, sd1.TextEncoder));
        Assert.Contains("for SDXL", e.Message);
    }

    [Fact]
    public void AnSdxlEmbeddingAddsItsTokenToBothEncoders()
    {
        using var dir = new TempDir();
        string path = dir.File("xl-style.safetensors");
        using var generator = new Generator(9);
        var clipL = randn([2, 32], generator: generator);
        var clipG = randn([2, 32], generator: generator);
        SafetensorsWriter.Save(path, new Dictionary<string, Tensor> { ["clip_l"] = clipL, ["clip_g"] = clipG });
        using var pipeline = StableDiffusionPipeline.FromPretrained(Golden.Path("models", "tiny-sdxl"));
        var tokens = pipeline.LoadTextualInversion(path);
        Assert.Equal(["xl-style", "xl-style_1"], tokens);
        Assert.True(pipeline.Tokenizer.TryGetTokenId("xl-style_1", out int id1));
        Assert.True(pipeline.Tokenizer2!.TryGetTokenId("xl-style_1", out int id2));
        using var _ = no_grad();
        var rows1 = pipeline.TextEncoder.named_parameters().First(p => p.name.EndsWith("token_embedding.weight")).parameter;
        var rows2 = pipeline.TextEncoder2!.named_parameters().First(p => p.name.EndsWith("token_embedding.weight")).parameter;
        Golden.AssertClose(rows1[id1], clipL[1], what: "clip_l row");
        Golden.AssertClose(rows2[id2], clipG[1], what: "clip_g row");
        var sd1 = PipelineParityTests.Pipeline("models/tiny-sd");
        Assert.Throws<InvalidDataException>(() => sd1.LoadTextualInversion(path));
    }
}
