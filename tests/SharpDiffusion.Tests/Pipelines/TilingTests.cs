using SharpDiffusion.Imaging;
using SharpDiffusion.Models;
using SharpDiffusion.Pipelines;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Pipelines;

/// <summary>
/// A1111's Tiling (<see cref="CircularPadding"/>, GenerationOptions.Tiling, `--tiling`): with every conv padding circularly
/// the networks see a torus, so shifting their input around the edges shifts their output the same way (the left edge
/// continues into the right): checked on the UNet, the VAE decoder and a whole generation's edges; without tiling the
/// same checks fail, so they can.
/// </summary>
public class TilingTests
{
    [Fact]
    public void With_circular_padding_the_UNet_and_the_VAE_decoder_commute_with_a_wraparound_shift()
    {
        var pipeline = PipelineParityTests.Pipeline("models/tiny-sd");
        using var _ = inference_mode();
        using var generator = new Generator(4);
        using var latents = randn([1, 4, 16, 16], generator: generator);
        using var text = pipeline.EncodePrompt(["a tiled floor"]);
        using var conditioning = new SharpDiffusion.Conditioning.TextConditioning(text);
        // Shifts by whole cells of the deepest level (the UNet halves the size per level) so downsampling commutes too.
        long shift = 8;
        Tensor Unet(Tensor x) => pipeline.Unet.Forward(x, 400f, conditioning);
        Tensor Decode(Tensor x) => pipeline.VaeCodec.Decode(x);
        double Mismatch(Func<Tensor, Tensor> f, long scale)
        {
            using var shifted = f(latents.roll(shift, 3));
            using var direct = f(latents);
            using var rolled = direct.roll(shift * scale, direct.dim() - (direct.shape[^1] == 3 ? 2 : 1));
            return Golden.MaxAbsDiff(shifted, rolled);
        }
        int factor = pipeline.LatentFormat.SpatialFactor; // pixels per latent pixel
        double unetPlain = Mismatch(Unet, 1), vaePlain = Mismatch(Decode, factor);
        double unetTiled, vaeTiled;
        using (CircularPadding.Use(pipeline.Denoiser.Weights.Module, pipeline.VaeCodec.Weights.Module))
        {
            unetTiled = Mismatch(Unet, 1);
            vaeTiled = Mismatch(Decode, factor);
        }
        Assert.True(unetTiled < 1e-4, $"UNet with tiling: a shifted input gives the shifted output (max diff {unetTiled})");
        Assert.True(vaeTiled < 1e-4, $"VAE decoder with tiling: a shifted latent gives the shifted picture (max diff {vaeTiled})");
        Assert.True(unetPlain > 1e-3 && vaePlain > 1e-3, $"without tiling the edges break the shift ({unetPlain}, {vaePlain})");
        Assert.Equal(unetPlain, Mismatch(Unet, 1)); // the scope restored zero padding
    }

    [Fact]
    public void A_tiled_picture_continues_across_its_edges_and_says_so_in_its_infotext()
    {
        var pipeline = PipelineParityTests.Pipeline("models/tiny-sd");
        var options = new GenerationOptions { Prompts = ["a pattern"], NumInferenceSteps = 3, Width = 64, Height = 64, Seed = 3, Tiling = true };
        using var result = pipeline.Generate(options);
        using var image = result.ImageFloat[0];                                         // [H, W, 3]
        double Step(Tensor a, Tensor b) => (a - b).abs().mean().item<float>();
        // The jump from the last column to the first is like any jump between neighbours inside the picture.
        double wrap = Step(image.select(1, 63), image.select(1, 0));
        double inside = Enumerable.Range(0, 63).Average(x => Step(image.select(1, x), image.select(1, x + 1)));
        double wrapRows = Step(image.select(0, 63), image.select(0, 0));
        double insideRows = Enumerable.Range(0, 63).Average(y => Step(image.select(0, y), image.select(0, y + 1)));
        Assert.True(wrap < 2 * inside && wrapRows < 2 * insideRows, $"edge jumps {wrap:F4}/{wrapRows:F4} against inside {inside:F4}/{insideRows:F4}");
        Assert.Contains("Tiling: True", ImageOutput.InfoTextFor(options, result, result.Images[0], "tiny-sd"));
        Assert.Throws<ArgumentException>((options with { VaeTiling = true }).Validate);
    }
}
