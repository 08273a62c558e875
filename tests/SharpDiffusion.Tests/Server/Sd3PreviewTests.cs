using SharpDiffusion.Imaging;
using SharpDiffusion.Pipelines;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Server;

/// <summary>The server's cheap live preview (<see cref="LatentPreview"/>, "Approx cheap") on SD3's latents: 16 channels,
/// x = (z − shift)·scale, VAE factor 4 (the transformer's patch 2 does not change the latent grid the preview maps), one
/// preview pixel per latent pixel.</summary>
public class Sd3PreviewTests
{
    /// <param name="bound">The preview's mean error must be below this fraction of the mean colour's: the golden SD3 VAEs have
    /// random weights, whose colours no linear map recovers well (the fit only beats the mean colour); the shipped,
    /// trained model (4 channels) is the yardstick that a fitted map on a real VAE does far better.</param>
    [Theory]
    [InlineData("tiny-sd3", 16, 1.0)]
    [InlineData("tiny-sd35", 16, 1.0)]
    [InlineData("sharp-shapes", 4, 0.5)]
    public void The_fitted_map_turns_the_latents_into_the_pictures_colours(string model, int channels, double bound)
    {
        using var pipeline = StableDiffusionPipeline.FromPretrained(model == "sharp-shapes" ? Repo.ShippedModel : Golden.Path("v3", "models", model));
        Assert.Equal(channels, pipeline.LatentFormat.Channels);
        using var preview = LatentPreview.Fit(pipeline);
        using var scope = NewDisposeScope();

        // A picture the fit never saw, encoded as the loop holds latents (the VAE posterior's mean, shifted and scaled).
        string path = Golden.Path("inpaint", "init_64x64.png");
        var picture = ImageFile.Decode(File.ReadAllBytes(path), path);
        var pixels = tensor(picture.Rgb.Select(b => b / 127.5f - 1).ToArray(), [1, picture.Height, picture.Width, 3]).permute(0, 3, 1, 2); // [1, 3, 64, 64]
        var vae = pipeline.VaeCodec;
        using var posterior = vae.Model.Encode(pixels.to(vae.DType));
        var latents = vae.Format.FromVae(posterior.Mean.to(ScalarType.Float32));                                                        // [1, C, 16, 16]
        var shown = preview.ToImages(latents)[0];
        Assert.Equal((picture.Width / pipeline.LatentFormat.SpatialFactor, picture.Height / pipeline.LatentFormat.SpatialFactor), (shown.Width, shown.Height));

        // The preview's colours follow the picture's (each latent cell's average): closer than the picture's mean colour is.
        var cells = (nn.functional.avg_pool2d((pixels + 1) / 2, pipeline.LatentFormat.SpatialFactor) * 255).permute(0, 2, 3, 1).reshape(-1, 3); // [h·w, 3]
        var got = tensor(shown.Rgb.Select(b => (float)b).ToArray(), [shown.Width * shown.Height, 3]);
        double previewError = (got - cells).abs().mean().item<float>();
        double flatError = (cells.mean([0L], keepdim: true) - cells).abs().mean().item<float>();
        Assert.True(previewError < bound * flatError, $"{model}: preview error {previewError:0.0} vs {flatError:0.0} for the mean colour");
    }
}
