using SharpDiffusion.Pipelines;

namespace SharpDiffusion.Tests.Pipelines;

/// <summary>Sizes the machine cannot hold are refused before any work, with the estimate and the fix; a decode that only
/// fits in tiles is tiled.</summary>
[Collection(ProcessWide.Settings)]
public class MemoryEstimateTests
{
    const long GB = 1_000_000_000;

    [Fact]
    public void The_estimate_grows_with_the_pixels_and_the_guided_batch()
    {
        var pipe = PipelineParityTests.Pipeline("models/small-sd15");
        var small = MemoryEstimate.For(pipe, 1, guided: true, 64, 64);
        var large = MemoryEstimate.For(pipe, 1, guided: true, 128, 128);
        var unguided = MemoryEstimate.For(pipe, 1, guided: false, 64, 64);
        Assert.Equal(4 * small.UNetBytes, large.UNetBytes);
        Assert.Equal(2 * unguided.UNetBytes, small.UNetBytes);
        Assert.True(large.TiledDecodeBytes < large.DecodeBytes);
    }

    [Fact]
    public void A_call_that_fits_is_left_alone_one_whose_decode_does_not_is_tiled_one_that_cannot_fit_is_refused()
    {
        var estimate = new MemoryEstimate(UNetBytes: 2 * GB, DecodeBytes: 10 * GB, TiledDecodeBytes: 1 * GB);
        var warnings = new List<string>();
        Assert.False(MemoryEstimate.NeedsTiling(estimate, 16 * GB, 2048, 2048, warnings));
        Assert.False(MemoryEstimate.NeedsTiling(estimate, null, 2048, 2048, warnings));
        Assert.Empty(warnings);

        Assert.True(MemoryEstimate.NeedsTiling(estimate, 4 * GB, 2048, 2048, warnings));
        Assert.Contains("needs about 10.0 GB but 4.0 GB is available: decoded in tiles", Assert.Single(warnings));

        var e = Assert.Throws<InsufficientMemoryException>(() => MemoryEstimate.NeedsTiling(estimate, 1 * GB, 2048, 2048, warnings));
        Assert.Contains("A 2048x2048 generation needs about 2.0 GB for its activations (UNet 2.0 GB, tiled VAE decode 1.0 GB) but 1.0 GB is available", e.Message);
    }

    [Fact]
    public void The_cli_refuses_an_enormous_size_in_one_line_with_the_estimate()
    {
        var (code, _, err) = SharpDiffusion.Tests.Cli.GenerateCommandTests.Run("generate", "--model", Golden.Path("models", "tiny-sd"),
            "--prompt", "x", "--width", "8192", "--height", "8192", "--steps", "1", "--output", Path.Combine(Path.GetTempPath(), "never.png"));
        Assert.Equal(2, code);
        Assert.Matches(@"^error: A 8192x8192 generation needs about \d+\.\d GB for its activations .* is available; use a smaller size", err);
        Assert.Single(err.TrimEnd('\n').Split('\n'));
        Assert.False(File.Exists(Path.Combine(Path.GetTempPath(), "never.png")));
    }
}
