using SharpDiffusion.Conditioning;
using SharpDiffusion.Pipelines;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Flux;

/// <summary>What a Flux model cannot take fails before any work, in one line naming the value and the fix.</summary>
public class FluxBadInputTests
{
    static GenerationOptions Options => new() { Prompts = ["a red house"], NumInferenceSteps = 4, Width = 64, Height = 64 };

    static readonly Dictionary<string, GenerationOptions> Cases = new()
    {
        // Not a multiple of 2 × the VAE factor (8 for the tiny VAE's factor 4; 16 for Flux.1).
        ["width 100"] = Options with { Width = 100 },
        ["negative prompt"] = Options with { NegativePrompts = ["blurry"] },
        ["prompt_3"] = Options with { Prompts3 = ["t5 text"] },
        ["clip skip 2"] = Options with { ClipSkip = 2 },
        ["inpainting"] = Options with { Strength = 0.5, Image = new SharpDiffusion.Imaging.RgbImage(64, 64, new byte[64 * 64 * 3]),
            MaskImage = new SharpDiffusion.Imaging.RgbImage(64, 64, new byte[64 * 64 * 3]) },
    };

    [Theory]
    [InlineData("width 100", "multiple of 8")]
    [InlineData("negative prompt", "no negative prompt")]
    [InlineData("prompt_3", "--prompt-2")]
    [InlineData("clip skip 2", "Clip skip 2")]
    [InlineData("inpainting", "remove the mask")]
    public void Options_flux_cannot_take_are_refused_in_one_line(string name, string expected)
    {
        var pipeline = FluxGolden.Pipeline("tiny-flux-schnell");
        var e = Assert.ThrowsAny<Exception>(() => pipeline.Validate(Cases[name]));
        Assert.IsNotType<NullReferenceException>(e);
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void A_t5_of_another_width_is_refused_in_one_line()
    {
        var conditioner = Assert.IsType<FluxTextConditioner>(FluxGolden.Pipeline("tiny-flux-schnell").Conditioner);
        var (clip, t5) = (conditioner.Encoders[0], conditioner.Encoders[1]);
        var e = Assert.Throws<InvalidDataException>(() => new FluxTextConditioner(conditioner.Tokenizer, clip, conditioner.Tokenizer2, t5,
            jointAttentionDim: 4096, pooledProjectionDim: conditioner.TextEncoder.Config.HiddenSize, 256, CPU));
        Assert.Contains("d_model 96 is not the Flux transformer's joint_attention_dim 4096", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Text_tokens_of_another_width_are_refused_by_the_transformer_in_one_line()
    {
        using var _ = inference_mode();
        var golden = Golden.Load(FluxGolden.File("tiny-flux-schnell", "schnell_64x96_seed6_4steps"));
        var transformer = Assert.IsType<SharpDiffusion.Families.Flux.FluxTransformerDenoiser>(FluxGolden.Pipeline("tiny-flux-schnell").Denoiser).Transformer;
        var input = FluxGolden.FirstCall(golden) with { EncoderHiddenStates = zeros(1, 256, 64) };
        var e = Assert.Throws<ArgumentException>(() => transformer.Forward(input));
        Assert.Contains("encoder_hidden_states must be [1, M, 96]", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}
