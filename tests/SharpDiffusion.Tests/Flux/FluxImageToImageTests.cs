using SharpDiffusion.Families.Flux;
using SharpDiffusion.Imaging;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Tests.Sd3;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Flux;

/// <summary>
/// Flux img2img as diffusers 0.31's FluxImg2ImgPipeline (no golden case: checked against its formulas on the golden
/// txt2img case's schedule): the schedule of the same size (σ's linspace(1, 1/n, n) shifted by μ of the token count,
/// which the txt2img case gives) cut by get_timesteps (t_start = n − int(n·strength)); the first transformer input
/// scale_noise(x₀, t₀, ε) = σ₀·ε + (1 − σ₀)·x₀, where x₀ = (z − shift_factor)·scaling_factor of the VAE posterior sample
/// (the generator's first draw) and ε the next draw.
/// </summary>
public class FluxImageToImageTests(ITestOutputHelper output)
{
    const string Model = "tiny-flux-dev", Case = "dev_96x128_seed12_6steps_g3.5";

    [Theory]
    [InlineData(0.6)]
    [InlineData(0.35)]
    public void Img2img_cuts_the_flux_schedule_and_noises_the_scaled_vae_sample(double strength)
    {
        var golden = Golden.Load(FluxGolden.File(Model, Case));
        var options = FluxGolden.Options(FluxGolden.Info(Model, Case));
        var (pipeline, recorder) = Recording.Wrap(FluxGolden.Pipeline(Model));
        var picture = Stripes(options.Width!.Value, options.Height!.Value);
        options = options with { Image = picture, Strength = strength };
        using var _ = inference_mode();

        using var result = pipeline.Generate(options);
        int n = options.NumInferenceSteps, tStart = n - (int)(n * strength);
        var expectedTimesteps = golden["scheduler_timesteps"].data<float>().Skip(tStart).ToArray();
        Assert.Equal(expectedTimesteps, recorder.Timesteps.ToArray());

        var vae = pipeline.VaeCodec;
        using var generator = new Generator((ulong)options.Seed!.Value);
        using var posterior = vae.Model.Encode(ImageInputs.ToTensor(picture));
        var z = posterior.Sample(generator);
        var x0 = (z - vae.Model.Config.ShiftFactor) * vae.Model.Config.ScalingFactor;
        using var noise = InitialNoise.Draw(x0.shape, generator, pipeline.Device);
        float sigma = golden["scheduler_sigmas"].data<float>()[tStart];
        var expected = sigma * noise + (1 - sigma) * x0;
        double diff = Golden.AssertClose(recorder.First!.HiddenStates, expected, what: "noised image latents");
        Assert.Equal(new long[] { 1, options.Height.Value, options.Width.Value, 3 }, result.ImageFloat.shape);
        output.WriteLine($"strength {strength}: {recorder.Timesteps.Count} of {n} steps from σ = {sigma}; first transformer input max |diff| {diff:E3}");
    }

    /// <summary>Diagonal stripes of two colours.</summary>
    static RgbImage Stripes(int width, int height)
    {
        var rgb = new byte[width * height * 3];
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                bool dark = (x + y) / 8 % 2 == 0;
                rgb[(y * width + x) * 3] = dark ? (byte)30 : (byte)220;
                rgb[(y * width + x) * 3 + 1] = dark ? (byte)60 : (byte)180;
                rgb[(y * width + x) * 3 + 2] = dark ? (byte)200 : (byte)40;
            }
        return new RgbImage(width, height, rgb);
    }
}
