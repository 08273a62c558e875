using SharpDiffusion.Adapters;
using SharpDiffusion.Loading;
using SharpDiffusion.Pipelines;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.FewStep;

/// <summary>
/// Issue 25's bad input not covered elsewhere: an SDXL LoRA (LCM-LoRA SDXL has second-text-encoder layers) on an SD 1.x
/// model is refused in one line naming both families, before the first step and without changing the weights. (A VAE or
/// TAESD with other latents: AutoencoderTinyTests and PreviewVaeTests; AYS without a list and non-decreasing σ's:
/// ScheduleVariantTests.)
/// </summary>
public class FewStepBadInputTests
{
    [Fact]
    public void An_sdxl_lora_on_an_sd15_model_is_a_one_line_error_naming_both_families()
    {
        using var dir = new TempDir();
        string path = dir.File("lcm-lora-sdxl.safetensors");
        SafetensorsWriter.Save(path, new Dictionary<string, Tensor>
        {
            ["lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight"] = ones(4, 32),
            ["lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight"] = ones(32, 4),
        });
        using var pipeline = StableDiffusionPipeline.Load(Golden.Path("models", "small-sd15"));
        using var lora = LoraFile.Load(path);
        int steps = 0;
        var e = Assert.Throws<InvalidDataException>(() => pipeline.Generate(new GenerationOptions
        {
            Prompts = ["x"], NumInferenceSteps = 2, Width = 64, Height = 64, Loras = [new LoraWeight(lora, 1.0)],
        }, onStepEnd: (_, _) => steps++));
        Assert.Equal(0, steps);
        Assert.Contains("for SDXL", e.Message);
        Assert.Contains("SD 1.x/2.x", e.Message);
        Assert.Contains(path, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}
