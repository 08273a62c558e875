using SharpDiffusion.Imaging;
using SharpDiffusion.Loading;
using SharpDiffusion.Loading.SingleFile;
using SharpDiffusion.Pipelines;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.FewStep;

/// <summary>
/// Issue 25 item 3: <c>--vae</c> with a full AutoencoderKL file as users download them (the LDM layout of
/// vae-ft-mse-840000-ema-pruned.safetensors, and a diffusers vae/ folder), and the infotext's "VAE hash" / "VAE".
/// The file is written here from the model's own VAE under its LDM names, so decoding with it must give the same picture.
/// </summary>
public class VaeFileTests(ITestOutputHelper output)
{
    static StableDiffusionPipeline SmallSd15() => StableDiffusionPipeline.Load(Golden.Path("models", "small-sd15"));

    [Fact]
    public void An_ldm_layout_vae_file_decodes_as_the_models_own_vae()
    {
        using var pipeline = SmallSd15();
        using var dir = new TempDir();
        var vae = pipeline.VaeCodec.Model;
        var names = vae.named_parameters().Select(p => p.name).ToList();
        var toLdm = LdmKeyMap.Vae(names, vae.Config.BlockOutChannels.Length, vae.Config.LayersPerBlock);
        var tensors = vae.named_parameters().ToDictionary(p => toLdm[p.name][LdmKeyMap.VaePrefix.Length..], p => (Tensor)p.parameter.detach());
        Assert.Contains("encoder.down.0.block.0.conv1.weight", tensors.Keys);
        string file = dir.File("vae-ft-mse-test.safetensors");
        SafetensorsWriter.Save(file, tensors);

        using var _ = inference_mode();
        using var latents = randn(new long[] { 1, 4, 8, 8 }, generator: manual_seed(3));
        using var own = pipeline.DecodeLatents(latents);
        pipeline.VaeCodec.UseVae(file, new LoadOptions());
        using var swapped = pipeline.DecodeLatents(latents);
        double diff = Golden.MaxAbsDiff(swapped, own);
        output.WriteLine($"LDM-layout VAE file against the model's VAE: max |diff| {diff:E2}");
        Assert.True(diff <= 1e-5, $"max |diff| {diff:E3}");   // the same weights: equal up to float rounding
        Assert.Equal("vae-ft-mse-test.safetensors", pipeline.VaeCodec.VaeName);
        Assert.Equal(ModelHash.Compute(file), pipeline.VaeCodec.VaeHash);   // A1111: sha256[:10] of the file, as the model hash
    }

    [Fact]
    public void The_infotext_names_the_vae_as_a1111_does()
    {
        string text = InfoText.Format("a cat", "", 4, "Euler", 1.5, 7, 512, 512, "model", modelHash: "0123456789", vae: "taesd_decoder.safetensors", vaeHash: "abcdef0123");
        Assert.Contains("Model hash: 0123456789, Model: model, VAE hash: abcdef0123, VAE: taesd_decoder.safetensors", text);
        var parsed = InfoText.Parse(text);
        Assert.Equal("taesd_decoder.safetensors", parsed["VAE"]);
        Assert.Equal("abcdef0123", parsed["VAE hash"]);
        Assert.DoesNotContain("VAE", InfoText.Format("a cat", "", 4, "Euler", 1.5, 7, 512, 512, "model"));
    }
}
