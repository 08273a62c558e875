using SharpDiffusion.Loading;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Models;

/// <summary>golden/text_encoder, golden/unet, golden/vae: one model call each against diffusers/transformers.</summary>
public class ComponentParityTests(ITestOutputHelper output)
{
    static string ModelDir(string model, string component) => Golden.Path("models", model, component);

    [Theory]
    [InlineData("tiny-sd", "text_encoder/tiny-sd.safetensors")]
    [InlineData("small-sd15", "text_encoder/small-sd15.safetensors")]
    [InlineData("tiny-sd2", "sd2/text_encoder_tiny-sd2.safetensors")] // exact GELU, pad id 0
    public void Text_encoder_matches_transformers(string model, string goldenFile)
    {
        using var _ = inference_mode();
        var golden = Golden.Load(goldenFile.Split('/'));
        using var encoder = ComponentLoader.LoadTextEncoder(ModelDir(model, "text_encoder"));
        var result = encoder.Run(golden["input_ids"], keepHiddenStates: true);
        double worst = Golden.AssertClose(result.LastHiddenState, golden["last_hidden_state"], what: "last_hidden_state");
        worst = Math.Max(worst, Golden.AssertClose(result.PooledOutput, golden["pooler_output"], what: "pooler_output"));
        for (int i = 0; i < result.HiddenStates!.Count; i++)
            worst = Math.Max(worst, Golden.AssertClose(result.HiddenStates[i], golden[$"hidden_states.{i}"], what: $"hidden_states.{i}"));
        Assert.Equal(golden.Keys.Count(k => k.StartsWith("hidden_states.")), result.HiddenStates.Count);
        output.WriteLine($"{model} text encoder max |diff| {worst:E3}");
    }

    [Theory]
    [InlineData("tiny-sd", "unet/tiny-sd_square.safetensors")]
    [InlineData("small-sd15", "unet/small-sd15_square.safetensors")]
    [InlineData("small-sd15", "unet/small-sd15_nonsquare.safetensors")]
    [InlineData("tiny-sd2", "sd2/unet_tiny-sd2.safetensors")] // per-block heads, linear projection, upcast_attention
    public void UNet_matches_diffusers(string model, string goldenFile)
    {
        using var _ = inference_mode();
        var golden = Golden.Load(goldenFile.Split('/'));
        using var unet = ComponentLoader.LoadUNet(ModelDir(model, "unet"));
        var sample = golden["sample"];
        var context = golden["encoder_hidden_states"];
        var cases = new (string Key, Tensor T)[]
        {
            ("out_t999", tensor(999L)),
            ("out_t500", tensor(500L)),
            ("out_t1", tensor(1L)),
            ("out_t0", tensor(0L)),
            ("out_t500_5", tensor(500.5f)),
            ("out_t832_5_tensor", tensor(832.5f)),
            ("out_per_sample", golden["timesteps_per_sample"]),
        };
        double worst = 0, worstRelative = 0;
        foreach (var (key, t) in cases)
        {
            double diff = Golden.AssertClose(unet.Forward(sample, t, context), golden[key], what: key);
            worst = Math.Max(worst, diff);
            worstRelative = Math.Max(worstRelative, diff / Golden.MaxAbs(golden[key]));
        }
        output.WriteLine($"{goldenFile} UNet max |diff| {worst:E3} ({worstRelative:E2} of max |expected|)");
    }

    /// <summary>
    /// In small-sd15 the UNet's last level is 1×1 with two channels per GroupNorm group, which amplifies fp32
    /// rounding (our fp32 result differs from the fp32 reference by up to ~8e-5 of its scale there). Computed in
    /// float64, the model must agree with the reference to the reference's own fp32 rounding (the golden
    /// README's float64 study: ≤ 2.8e-6 relative), which shows the gap is rounding, not a formula.
    /// </summary>
    [Theory]
    [InlineData("small-sd15", "unet/small-sd15_square.safetensors")]
    [InlineData("small-sd15", "unet/small-sd15_nonsquare.safetensors")]
    [InlineData("tiny-sd2", "sd2/unet_tiny-sd2.safetensors")]
    public void UNet_in_float64_matches_to_the_references_own_rounding(string model, string goldenFile)
    {
        using var _ = inference_mode();
        var golden = Golden.Load(goldenFile.Split('/'));
        using var unet = ComponentLoader.LoadUNet(ModelDir(model, "unet"), new LoadOptions { DType = ScalarType.Float64 });
        var sample = golden["sample"].to(ScalarType.Float64);
        var context = golden["encoder_hidden_states"].to(ScalarType.Float64);
        foreach (var (key, t) in new[] { ("out_t999", tensor(999L)), ("out_t1", tensor(1L)), ("out_t500_5", tensor(500.5f)) })
            Golden.AssertClose(unet.Forward(sample, t, context), golden[key], rel: 1e-5, abs: 1e-7, what: key);
    }

    [Theory]
    [InlineData("tiny-sd", "square")]
    [InlineData("small-sd15", "square")]
    [InlineData("small-sd15", "nonsquare")]
    public void Vae_decode_and_encode_match_diffusers(string model, string shape)
    {
        using var _ = inference_mode();
        var golden = Golden.Load("vae", $"{model}_{shape}.safetensors");
        using var vae = ComponentLoader.LoadVae(ModelDir(model, "vae"));
        double worst = Golden.AssertClose(vae.Decode(golden["decode_in_z"]), golden["decode_out"], what: "decode");
        using var posterior = vae.Encode(golden["encode_in_image"]);
        worst = Math.Max(worst, Golden.AssertClose(posterior.Mean, golden["encode_mean"], what: "mean"));
        worst = Math.Max(worst, Golden.AssertClose(posterior.LogVar, golden["encode_logvar"], what: "logvar"));
        worst = Math.Max(worst, Golden.AssertClose(posterior.Std, golden["encode_std"], what: "std"));
        worst = Math.Max(worst, Golden.AssertClose(posterior.Var, golden["encode_var"], what: "var"));
        using var generator = new Generator(322);
        worst = Math.Max(worst, Golden.AssertClose(posterior.Sample(generator), golden["encode_sample_seed322"], what: "sample"));
        output.WriteLine($"{model} {shape} VAE max |diff| {worst:E3}");
    }
}
