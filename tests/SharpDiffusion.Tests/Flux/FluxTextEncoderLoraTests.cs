using SharpDiffusion.Adapters;
using SharpDiffusion.Loading;
using SharpDiffusion.Pipelines;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Flux;

/// <summary>
/// A LoRA with text-encoder layers on a model whose conditioner reads its encoders one at a time (Flux, SD3): with
/// LowMemory the encoders are not in memory between calls, so the merge must bring them in first, or it would patch
/// nothing. The picture with LowMemory equals the one with every weight resident, and differs from the picture without
/// the LoRA.
/// </summary>
public class FluxTextEncoderLoraTests
{
    [Fact]
    public void A_clip_lora_changes_the_picture_with_low_memory_as_without_it()
    {
        using var dir = new TempDir();
        using var generator = new Generator(7);
        const string key = "lora_te1_text_model_encoder_layers_0_self_attn_q_proj";
        string path = dir.File("te_lora.safetensors");
        // CLIP-L of tiny-flux is 32 wide; rank 2, alpha 2, large enough to move the prompt's embedding.
        SafetensorsWriter.Save(path, new Dictionary<string, Tensor>
        {
            [$"{key}.lora_down.weight"] = randn([2, 32], generator: generator),
            [$"{key}.lora_up.weight"] = randn([32, 2], generator: generator),
            [$"{key}.alpha"] = tensor(2.0f),
        });
        var options = new GenerationOptions { Prompts = ["a red house"], NumInferenceSteps = 2, Width = 64, Height = 64, Seed = 3, GuidanceScale = 0 };

        byte[] Draw(bool lowMemory, bool withLora)
        {
            using var pipeline = StableDiffusionPipeline.Load(FluxGolden.ModelDir("tiny-flux-schnell"), new LoadOptions { LowMemory = lowMemory });
            using var lora = LoraFile.Load(path);
            using var result = pipeline.Generate(withLora ? options with { Loras = [new LoraWeight(lora, 1.0)] } : options);
            return result.Images[0].Rgb;
        }

        var lowMemory = Draw(lowMemory: true, withLora: true);
        Assert.Equal(Draw(lowMemory: false, withLora: true), lowMemory);
        Assert.NotEqual(Draw(lowMemory: true, withLora: false), lowMemory);
    }
}
