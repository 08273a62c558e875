using SharpDiffusion.Loading;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Sd3;

/// <summary>golden/v3 sd3/&lt;model&gt;/vae16.safetensors: the 16-channel AutoencoderKL of SD3 (no quant convs, shift_factor),
/// encode's posterior mean/std and decode, without scaling or shift, against diffusers 0.31.</summary>
public class Vae16ParityTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("tiny-sd3")]
    [InlineData("tiny-sd35")]
    public void Vae16_encode_and_decode_match_diffusers(string model)
    {
        using var _ = inference_mode();
        var golden = Golden.Load("v3", "sd3", model, "vae16.safetensors");
        using var vae = ComponentLoader.LoadVae(Golden.Path("v3", "models", model, "vae"));

        using var posterior = vae.Encode(golden["image"]);
        double worst = Golden.AssertClose(posterior.Mean, golden["latent_mean"], what: "mean");
        worst = Math.Max(worst, Golden.AssertClose(posterior.Std, golden["latent_std"], what: "std"));
        worst = Math.Max(worst, Golden.AssertClose(vae.Decode(golden["latent"]), golden["decoded"], what: "decode"));
        output.WriteLine($"{model} 16-channel VAE max |diff| {worst:E3}");

        // The latent format the pipeline needs comes from config.json, as the reference recorded it.
        using var goldenFile = SafetensorsFile.Open(Golden.Path("v3", "sd3", model, "vae16.safetensors"));
        using var info = System.Text.Json.JsonDocument.Parse(goldenFile.Metadata["info"]);
        Assert.Equal(info.RootElement.GetProperty("shift_factor").GetDouble(), vae.Config.ShiftFactor);
        Assert.Equal(info.RootElement.GetProperty("scaling_factor").GetDouble(), vae.Config.ScalingFactor);
    }

    [Fact]
    public void Vae_without_quant_convs_has_no_such_modules()
    {
        using var vae = ComponentLoader.LoadVae(Golden.Path("v3", "models", "tiny-sd3", "vae"));
        Assert.False(vae.Config.UseQuantConv);
        Assert.False(vae.Config.UsePostQuantConv);
        Assert.DoesNotContain(vae.named_parameters(), p => p.name.Contains("quant_conv"));
    }
}
