using SharpDiffusion.Families;
using SharpDiffusion.Families.Flux;
using SharpDiffusion.Loading;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Flux;

/// <summary>Flux.1 as a model family: detection from model_index.json, the latent format from the VAE config (16 channels,
/// shift and scale, 2×2 packing), the 16-channel VAE against diffusers (golden vae16.safetensors), no CFG batch, and the
/// packing being diffusers' token order.</summary>
public class FluxFamilyTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("tiny-flux-dev")]
    [InlineData("tiny-flux-schnell")]
    public void A_flux_folder_is_the_flux_family_with_the_vae_configs_latent_format(string model)
    {
        Assert.IsType<FluxFamily>(ModelFamily.Detect(DiffusersFolder.Open(FluxGolden.ModelDir(model))));
        var pipeline = FluxGolden.Pipeline(model);
        var vae = ComponentLoader.LoadVae(System.IO.Path.Combine(FluxGolden.ModelDir(model), "vae")).Config;
        var format = pipeline.LatentFormat;
        Assert.Equal((vae.LatentChannels, vae.ScaleFactor, vae.ScalingFactor, vae.ShiftFactor), (format.Channels, format.SpatialFactor, format.ScalingFactor, format.ShiftFactor));
        Assert.Equal(2, format.PatchSize);
        Assert.Equal(2 * vae.ScaleFactor, pipeline.SizeMultiple);   // 16 for Flux.1's VAE (factor 8)
        Assert.Equal(2, pipeline.Conditioner.Encoders.Count);       // CLIP-L, T5
        Assert.False(pipeline.Denoiser.Guidance(new SharpDiffusion.Pipelines.GenerationOptions { Prompts = ["x"], GuidanceScale = 3.5 }).Enabled);
    }

    [Theory]
    [InlineData("tiny-flux-dev")]
    [InlineData("tiny-flux-schnell")]
    public void Vae16_encode_and_decode_match_diffusers(string model)
    {
        using var _ = inference_mode();
        var golden = Golden.Load("v3", "flux", model, "vae16.safetensors");
        using var vae = ComponentLoader.LoadVae(System.IO.Path.Combine(FluxGolden.ModelDir(model), "vae"));
        using var posterior = vae.Encode(golden["image"]);
        double worst = Golden.AssertClose(posterior.Mean, golden["latent_mean"], what: "mean");
        worst = Math.Max(worst, Golden.AssertClose(posterior.Std, golden["latent_std"], what: "std"));
        worst = Math.Max(worst, Golden.AssertClose(vae.Decode(golden["latent"]), golden["decoded"], what: "decode"));
        output.WriteLine($"{model} 16-channel VAE max |diff| {worst:E3}");
    }

    /// <summary>Pack then unpack is the identity, and the packed draw is what diffusers gave the transformer (its
    /// _pack_latents order): checked against the dev case's first call.</summary>
    [Fact]
    public void Packing_is_diffusers_token_order_and_unpacking_inverts_it()
    {
        var golden = Golden.Load(FluxGolden.File("tiny-flux-dev", "dev_96x128_seed12_6steps_g3.5"));
        var noise = golden["rng_0"];
        var packed = FluxLatents.Pack(noise);
        Assert.Equal(0, Golden.MaxAbsDiff(packed, golden["denoiser_call0_hidden_states"]));
        Assert.Equal(0, Golden.MaxAbsDiff(FluxLatents.Unpack(packed, noise.shape[2], noise.shape[3]), noise));
        Assert.Equal(0, Golden.MaxAbsDiff(FluxLatents.ImageIds(noise.shape[2], noise.shape[3]), golden["denoiser_call0_img_ids"]));
    }

    /// <summary>x̂₀ = x − σ·v: at the last step (σ_next = 0) the Euler step lands on it, so the last preview is diffusers'
    /// final latents.</summary>
    [Fact]
    public void The_last_steps_preview_is_the_final_latents()
    {
        const string name = "schnell_64x96_seed6_4steps";
        var golden = FluxGolden.Load("tiny-flux-schnell", name);
        var pipeline = FluxGolden.Pipeline("tiny-flux-schnell");
        using var _ = inference_mode();
        Tensor? last = null;
        using var result = pipeline.Generate(FluxGolden.Options(FluxGolden.Info("tiny-flux-schnell", name)), onDenoised: (i, x0) =>
        {
            last?.Dispose();
            last = x0.clone().DetachFromDisposeScope();
        });
        var steps = golden["latents_steps"];
        double diff = Golden.AssertClose(last!, steps[steps.shape[0] - 1], rel: 1e-3, abs: 1e-4, what: "last preview");
        output.WriteLine($"last preview against diffusers' final latents: max |diff| {diff:E3}");
        last!.Dispose();
    }
}
