using SharpDiffusion.Conditioning;
using SharpDiffusion.Loading;
using SharpDiffusion.Loading.SingleFile;
using SharpDiffusion.Models;
using Xunit.Abstractions;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpDiffusion.Tests.Models;

/// <summary>The SD 1.x/2.x components with the oneDNN linear kernel forced through the load options (<c>--linear onednn</c>):
/// every linear layer of CLIP, the UNet, the VAE and ControlNet takes it, and the golden cases of <see cref="ComponentParityTests"/>
/// (golden README "text_encoder/", "unet/", "vae/", "sd2/", "Extension 3" ControlNet) still match within their tolerances.
/// With the default kernel, each layer's output is F.linear's bit for bit (what TorchSharp's nn.Linear computed), so the
/// existing goldens are unchanged.</summary>
public class LinearKernelComponentParityTests(ITestOutputHelper output)
{
    static readonly LoadOptions OneDnn = new() { Linear = LinearKernel.OneDnn };

    static string ModelDir(string model, string component) => Golden.Path("models", model, component);

    [Theory]
    [InlineData("tiny-sd", "text_encoder/tiny-sd.safetensors")]
    [InlineData("small-sd15", "text_encoder/small-sd15.safetensors")]
    [InlineData("tiny-sd2", "sd2/text_encoder_tiny-sd2.safetensors")]
    public void Text_encoder_matches_transformers_with_the_onednn_kernel(string model, string goldenFile)
    {
        using var _ = inference_mode();
        var golden = Golden.Load(goldenFile.Split('/'));
        using var encoder = ComponentLoader.LoadTextEncoder(ModelDir(model, "text_encoder"), OneDnn);
        LinearKernelParityTests.AssertKernel(encoder, LinearKernel.OneDnn);
        var result = encoder.Run(golden["input_ids"], keepHiddenStates: true);
        double worst = Golden.AssertClose(result.LastHiddenState, golden["last_hidden_state"], what: "last_hidden_state");
        worst = Math.Max(worst, Golden.AssertClose(result.PooledOutput, golden["pooler_output"], what: "pooler_output"));
        for (int i = 0; i < result.HiddenStates!.Count; i++)
            worst = Math.Max(worst, Golden.AssertClose(result.HiddenStates[i], golden[$"hidden_states.{i}"], what: $"hidden_states.{i}"));
        output.WriteLine($"{model} text encoder, oneDNN linears: max |diff| {worst:E3}");
    }

    [Theory]
    [InlineData("tiny-sd", "unet/tiny-sd_square.safetensors")]
    [InlineData("small-sd15", "unet/small-sd15_square.safetensors")]
    [InlineData("small-sd15", "unet/small-sd15_nonsquare.safetensors")]
    [InlineData("tiny-sd2", "sd2/unet_tiny-sd2.safetensors")] // linear proj_in/proj_out too
    public void UNet_matches_diffusers_with_the_onednn_kernel(string model, string goldenFile)
    {
        using var _ = inference_mode();
        var golden = Golden.Load(goldenFile.Split('/'));
        using var unet = ComponentLoader.LoadUNet(ModelDir(model, "unet"), OneDnn);
        using var standard = ComponentLoader.LoadUNet(ModelDir(model, "unet"));
        LinearKernelParityTests.AssertKernel(unet, LinearKernel.OneDnn);
        LinearKernelParityTests.AssertKernel(standard, LinearKernel.Default); // tests run with tuning off
        var (sample, context) = (golden["sample"], golden["encoder_hidden_states"]);
        var cases = new (string Key, Tensor T)[]
        {
            ("out_t999", tensor(999L)), ("out_t500", tensor(500L)), ("out_t1", tensor(1L)), ("out_t0", tensor(0L)),
            ("out_t500_5", tensor(500.5f)), ("out_t832_5_tensor", tensor(832.5f)), ("out_per_sample", golden["timesteps_per_sample"]),
        };
        double worst = 0, worstDefault = 0, kernels = 0;
        foreach (var (key, t) in cases)
        {
            using var y = unet.Forward(sample, t, context);
            using var reference = standard.Forward(sample, t, context);
            worst = Math.Max(worst, Golden.AssertClose(y, golden[key], what: $"{key} (oneDNN)"));
            worstDefault = Math.Max(worstDefault, Golden.MaxAbsDiff(reference, golden[key]));
            kernels = Math.Max(kernels, Golden.MaxAbsDiff(y, reference));
        }
        output.WriteLine($"{goldenFile} UNet, oneDNN linears: max |diff| {worst:E3} (F.linear: {worstDefault:E3}; oneDNN vs F.linear {kernels:E3})");
    }

    [Theory]
    [InlineData("tiny-sd", "square")]
    [InlineData("small-sd15", "square")]
    [InlineData("small-sd15", "nonsquare")]
    public void Vae_decode_and_encode_match_diffusers_with_the_onednn_kernel(string model, string shape)
    {
        using var _ = inference_mode();
        var golden = Golden.Load("vae", $"{model}_{shape}.safetensors");
        using var vae = ComponentLoader.LoadVae(ModelDir(model, "vae"), OneDnn);
        LinearKernelParityTests.AssertKernel(vae, LinearKernel.OneDnn);
        double worst = Golden.AssertClose(vae.Decode(golden["decode_in_z"]), golden["decode_out"], what: "decode");
        using var posterior = vae.Encode(golden["encode_in_image"]);
        worst = Math.Max(worst, Golden.AssertClose(posterior.Mean, golden["encode_mean"], what: "mean"));
        worst = Math.Max(worst, Golden.AssertClose(posterior.LogVar, golden["encode_logvar"], what: "logvar"));
        output.WriteLine($"{model} {shape} VAE, oneDNN linears: max |diff| {worst:E3}");
    }

    [Fact]
    public void ControlNet_residuals_match_diffusers_with_the_onednn_kernel()
    {
        var golden = Golden.Load("controlnet", "controlnet_tiny-controlnet-small-sd15.safetensors");
        using var model = ControlNetLoader.Load(Golden.Path(ControlNet.ControlNetParityTests.Sd15ControlNet.Split('/')), OneDnn);
        LinearKernelParityTests.AssertKernel(model, LinearKernel.OneDnn);
        using var _ = inference_mode();
        using var t = tensor(500.5f, ScalarType.Float32);
        using var residuals = model.Forward(golden["sample"], t, new TextConditioning(golden["encoder_hidden_states"]), golden["controlnet_cond"], 1.0, false);
        double worst = Golden.AssertClose(residuals.Mid, golden["out_t500_5.mid"], what: "mid");
        for (int i = 0; i < residuals.Down.Count; i++)
            worst = Math.Max(worst, Golden.AssertClose(residuals.Down[i], golden[$"out_t500_5.down.{i}"], what: $"down.{i}"));
        output.WriteLine($"ControlNet t500_5, oneDNN linears: max |diff| {worst:E3}");
    }

    /// <summary>The default kernel (float32), and either kernel in bfloat16 (oneDNN applies to float32 only): every linear
    /// layer's output during a UNet, text encoder and VAE call equals F.linear(x, W, b) exactly, the product TorchSharp's
    /// nn.Linear computed before these layers were ours.</summary>
    [Theory]
    [InlineData(LinearKernel.Default, ScalarType.Float32)]
    [InlineData(LinearKernel.OneDnn, ScalarType.BFloat16)]
    public void Every_layer_computes_F_linear_bit_for_bit_where_oneDNN_does_not_apply(LinearKernel kernel, ScalarType dtype)
    {
        var golden = Golden.Load("unet", "small-sd15_square.safetensors");
        var options = new LoadOptions { Linear = kernel, DType = dtype };
        using var unet = ComponentLoader.LoadUNet(ModelDir("small-sd15", "unet"), options);
        using var encoder = ComponentLoader.LoadTextEncoder(ModelDir("small-sd15", "text_encoder"), options);
        using var vae = ComponentLoader.LoadVae(ModelDir("small-sd15", "vae"), options);
        using var _ = inference_mode();
        var (calls, differing) = (0, new List<string>());
        var layers = new[] { (nn.Module)unet, encoder, vae }.SelectMany(LinearKernelParityTests.Layers).ToList();
        var hooks = layers.Select(layer => layer.register_forward_hook((m, x, y) =>
        {
            var l = (Linear)m;
            using var expected = F.linear(x, l.weight, l.bias);
            calls++;
            if (Golden.MaxAbsDiff(y, expected) != 0) differing.Add($"[{l.OutFeatures}, {l.InFeatures}] on [{string.Join(", ", x.shape)}]");
            return y;
        })).ToList();
        unet.Forward(golden["sample"].to(dtype), tensor(500L), golden["encoder_hidden_states"].to(dtype)).Dispose();
        using var ids = Golden.Load("text_encoder", "small-sd15.safetensors")["input_ids"];
        encoder.Run(ids).LastHiddenState.Dispose();
        var vaeCase = Golden.Load("vae", "small-sd15_square.safetensors");
        vae.Decode(vaeCase["decode_in_z"].to(dtype)).Dispose();
        vae.Encode(vaeCase["encode_in_image"].to(dtype)).Dispose();                // the encoder's mid-block attention
        foreach (var h in hooks) h.remove();

        Assert.True(calls >= layers.Count, $"{calls} calls of {layers.Count} layers"); // every layer ran
        Assert.Empty(differing);
        output.WriteLine($"{SharpDiffusion.Tuning.LinearDecision.Name(kernel)} {dtype}: {calls} calls of {layers.Count} linear layers, every one F.linear's bits");
    }
}
