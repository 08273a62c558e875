using SharpDiffusion.Loading;
using SharpDiffusion.Models.Vae;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpDiffusion.Tests.Models;

/// <summary>Tiled VAE decode: tiles cover the image exactly, blends are seamless, one tile is a plain decode.</summary>
public class TiledDecoderTests
{
    [Fact]
    public void One_tile_is_a_plain_decode()
    {
        using var _ = inference_mode();
        using var vae = ComponentLoader.LoadVae(Golden.Path("models", "tiny-sd", "vae"));
        var z = Golden.Load("vae", "tiny-sd_square.safetensors")["decode_in_z"]; // 32x32 latents, sample_size 64: one tile
        Assert.Equal(0.0, Golden.MaxAbsDiff(TiledDecoder.Decode(vae, z), vae.Decode(z)));
    }

    [Theory]
    [InlineData(40, 56)]
    [InlineData(64, 64)]
    [InlineData(17, 100)]
    public void A_local_decoder_gives_the_untiled_image_exactly(int h, int w)
    {
        // With a decoder that only looks at its own pixel, every overlap blends two equal values: any misplaced,
        // missing or doubled tile would show.
        using var _ = inference_mode();
        using var g = new Generator(3);
        var z = randn([1, 3, h, w], generator: g);
        Func<Tensor, Tensor> decode = t => F.interpolate(t * 2 + 1, scale_factor: [8.0, 8.0]);
        var tiled = TiledDecoder.Decode(decode, 8, z, tileSample: 128);
        var full = decode(z);
        Assert.Equal(full.shape, tiled.shape);
        Assert.True(Golden.MaxAbsDiff(tiled, full) < 1e-5);
    }

    [Fact]
    public void Tiles_that_disagree_are_blended_without_a_seam()
    {
        // Each tile decodes to its own constant: the blend must ramp between them instead of jumping.
        using var _ = inference_mode();
        int calls = 0;
        Func<Tensor, Tensor> decode = t => full([1, 1, t.shape[2] * 8, t.shape[3] * 8], (float)(calls++ * 10));
        var image = TiledDecoder.Decode(decode, 8, zeros(1, 1, 16, 40), tileSample: 128); // 16-latent tiles, 32-pixel blends
        double largestStep = (image[.., .., .., 1..] - image[.., .., .., ..^1]).abs().max().item<float>();
        // A seam would be a jump of 10; a 32-pixel ramp moves 10/32 per column (twice that where a horizontal and a
        // vertical ramp cross in a tile corner).
        Assert.True(largestStep <= 2 * 10.0 / 32 + 1e-4, $"largest step between columns {largestStep}");
        Assert.True(calls > 1);
    }
}
