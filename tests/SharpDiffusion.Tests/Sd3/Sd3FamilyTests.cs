using SharpDiffusion.Conditioning;
using SharpDiffusion.Families;
using SharpDiffusion.Families.StableDiffusion3;
using SharpDiffusion.Loading;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Sd3;

/// <summary>SD3/SD3.5 as a model family: detection from model_index.json, the latent format from the VAE and transformer
/// configs, T5 optional, and the flow-matching clean estimate of previews.</summary>
public class Sd3FamilyTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("tiny-sd3")]
    [InlineData("tiny-sd35")]
    public void An_sd3_folder_is_the_sd3_family_with_the_vae_configs_latent_format(string model)
    {
        var folder = DiffusersFolder.Open(Golden.Path("v3", "models", model));
        Assert.IsType<StableDiffusion3Family>(ModelFamily.Detect(folder));
        var pipeline = Sd3Golden.Pipeline(model, withoutT5: false);
        var vae = ComponentLoader.LoadVae(Golden.Path("v3", "models", model, "vae")).Config;
        var format = pipeline.LatentFormat;
        Assert.Equal((vae.LatentChannels, vae.ScaleFactor, vae.ScalingFactor, vae.ShiftFactor), (format.Channels, format.SpatialFactor, format.ScalingFactor, format.ShiftFactor));
        Assert.Equal(2, format.PatchSize);
        Assert.Equal(3, pipeline.Conditioner.Encoders.Count); // CLIP-L, bigG, T5
    }

    [Fact]
    public void Without_text_encoder_3_the_model_loads_two_encoders_and_t5_rows_are_zeros()
    {
        var pipeline = Sd3Golden.Pipeline("tiny-sd3", withoutT5: true);
        var conditioner = Assert.IsType<Sd3TextConditioner>(pipeline.Conditioner);
        Assert.Equal(2, conditioner.Encoders.Count);
        using var _ = inference_mode();
        var (embeds, _) = conditioner.EncodePrompt(["a tree"], ["a tree"], ["a tree"]);
        Assert.Equal(77 + 77, embeds.shape[1]);
        Assert.Equal(0, Golden.MaxAbs(embeds.narrow(1, 77, 77)));
    }

    /// <summary>x̂₀ = x − σ·v: at the last step (σ_next = 0) the Euler step lands exactly on it, so the preview of the last
    /// step is diffusers' final latents.</summary>
    [Fact]
    public void The_last_steps_preview_is_the_final_latents()
    {
        const string name = "flow_euler_96x128_seed11_6steps_g5";
        var golden = Golden.Load(Sd3Golden.File("tiny-sd3", name));
        var pipeline = Sd3Golden.Pipeline("tiny-sd3", withoutT5: false);
        var options = Sd3Golden.Options(Sd3Golden.Info("tiny-sd3", name));
        using var _ = inference_mode();
        Tensor? lastPreview = null;
        int steps = 0;
        using var result = pipeline.Generate(options, onDenoised: (i, x0) =>
        {
            steps++;
            lastPreview?.Dispose();
            lastPreview = x0.clone().DetachFromDisposeScope();
        });
        var latentSteps = golden["latents_steps"];
        Assert.Equal(latentSteps.shape[0], steps);
        double diff = Golden.AssertClose(lastPreview!, latentSteps[steps - 1], rel: 1e-3, abs: 1e-4, what: "last preview");
        output.WriteLine($"last preview against diffusers' final latents: max |diff| {diff:E3}");
        lastPreview!.Dispose();
    }
}
