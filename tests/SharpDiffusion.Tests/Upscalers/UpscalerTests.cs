using SharpDiffusion.Imaging;
using SharpDiffusion.Loading;
using SharpDiffusion.Models.Upscalers;
using SharpDiffusion.Tests.Cli;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Upscalers;

/// <summary>The v3 esrgan cases (spandrel 0.4.2 on tiny random-weight models), tiling, the CLI and refusals.</summary>
[Collection(ProcessWide.Settings)]
public class UpscalerTests(ITestOutputHelper log)
{
    static string Case(string file) => Golden.Path("v3", "esrgan", file);

    static double Parity(string name, string weights)
    {
        var golden = Golden.Load("v3", "esrgan", name + ".safetensors");
        using var upscaler = Upscaler.Load(weights);
        using var output = upscaler.Run(golden["input"]);
        double diff = Golden.MaxAbsDiff(output, golden["output"]);
        Assert.True(diff <= 1e-4, $"{name}: max |diff| {diff:E3} > 1e-4");
        return diff;
    }

    [Theory]
    [InlineData("realesrgan_x4plus_layout_nf16_nb2", 4, "ESRGAN (RRDBNet)")]
    [InlineData("realesrgan_x2plus_layout_nf16_nb1", 2, "ESRGAN (RRDBNet)")]
    [InlineData("esrgan_old_layout_nf16_nb1", 4, "ESRGAN (RRDBNet)")]
    [InlineData("compact_x4_nf16", 4, "Real-ESRGAN Compact (SRVGGNetCompact)")]
    public void Golden_case_matches_spandrel(string name, int scale, string architecture)
    {
        using (var upscaler = Upscaler.Load(Case(name + ".pth")))
            Assert.Equal((scale, architecture), (upscaler.Scale, upscaler.Architecture));
        double diff = Parity(name, Case(name + ".pth"));
        log.WriteLine($"{name}: max |diff| {diff:E3}");
    }

    /// <summary>The same weights as .safetensors (with the .pth's own keys, params. prefix included) load alike.</summary>
    [Theory]
    [InlineData("realesrgan_x4plus_layout_nf16_nb2")]
    [InlineData("compact_x4_nf16")]
    public void Safetensors_copy_of_the_weights_matches_spandrel(string name)
    {
        using var dir = new TempDir();
        string copy = dir.File(name + ".safetensors");
        using (var pth = TensorFiles.Open(Case(name + ".pth")))
            SafetensorsWriter.Save(copy, pth.Headers.ToDictionary(h => h.Name, h => pth.Load(h.Name)));
        log.WriteLine($"{name}.safetensors: max |diff| {Parity(name, copy):E3}");
    }

    [Fact]
    public void Params_ema_is_preferred_over_params()
    {
        using var dir = new TempDir();
        string both = dir.File("both.safetensors");
        using (var pth = TensorFiles.Open(Case("compact_x4_nf16.pth")))
        {
            var tensors = pth.Headers.ToDictionary(h => "params_ema." + h.Name["params.".Length..], h => pth.Load(h.Name));
            foreach (var h in pth.Headers)
                tensors[h.Name] = zeros_like(tensors["params_ema." + h.Name["params.".Length..]]);   // a wrong copy under params
            SafetensorsWriter.Save(both, tensors);
        }
        Parity("compact_x4_nf16", both);
    }

    /// <summary>A picture of several tiles (tile 32, overlap 16) against one untiled run: every byte within one level.</summary>
    [Theory]
    [InlineData("realesrgan_x4plus_layout_nf16_nb2")]
    [InlineData("realesrgan_x2plus_layout_nf16_nb1")]
    [InlineData("compact_x4_nf16")]
    public void Tiled_equals_untiled_within_one_level(string name)
    {
        var small = ImageFile.Load(Case("input_28x20.png"));
        var picture = PictureResize.Lanczos(small, 90, 70);                         // 3×3 tiles of 32
        using var upscaler = Upscaler.Load(Case(name + ".pth"));
        upscaler.Tile = 0;
        var whole = upscaler.Upscale(picture);
        upscaler.Tile = 32;
        var tiled = upscaler.Upscale(picture);
        Assert.Equal((whole.Width, whole.Height), (tiled.Width, tiled.Height));
        Assert.Equal((90 * upscaler.Scale, 70 * upscaler.Scale), (tiled.Width, tiled.Height));
        int worst = whole.Rgb.Zip(tiled.Rgb, (a, b) => Math.Abs(a - b)).Max();
        log.WriteLine($"{name}: tiled vs untiled, max {worst} levels");
        Assert.True(worst <= 1, $"{name}: tiles differ from the untiled run by {worst} levels");
    }

    [Fact]
    public void Another_scale_is_reached_with_lanczos()
    {
        var picture = ImageFile.Load(Case("input_28x20.png"));
        using var upscaler = Upscaler.Load(Case("compact_x4_nf16.pth"));
        var native = upscaler.Upscale(picture);
        var three = upscaler.Upscale(picture, 3);
        Assert.Equal(PictureResize.Lanczos(native, 84, 60).Rgb, three.Rgb);
        var eight = upscaler.Upscale(picture, 8);                                  // two model passes (×16), then Lanczos down
        Assert.Equal(PictureResize.Lanczos(upscaler.Upscale(native), 224, 160).Rgb, eight.Rgb);
    }

    [Fact]
    public void Unknown_layout_is_refused_naming_its_keys()
    {
        using var dir = new TempDir();
        string path = dir.File("unet.safetensors");
        SafetensorsWriter.Save(path, new Dictionary<string, Tensor>
        {
            ["down_blocks.0.conv.weight"] = zeros(4, 3, 3, 3),
            ["up_blocks.0.conv.weight"] = zeros(4, 3, 3, 3),
        });
        var error = Assert.Throws<InvalidDataException>(() => Upscaler.Load(path));
        Assert.Contains("down_blocks.0.conv.weight", error.Message);
        Assert.DoesNotContain('\n', error.Message);

        var (code, _, err) = GenerateCommandTests.Run("upscale", "--model", path, "--image", Case("input_28x20.png"), "--output", dir.File("out.png"));
        Assert.Equal(2, code);
        Assert.Contains("up_blocks.0.conv.weight", err);
        Assert.Single(err.Trim().Split('\n'));
        Assert.False(File.Exists(dir.File("out.png")));
    }

    [Fact]
    public void Cli_upscale_writes_the_png()
    {
        using var dir = new TempDir();
        string output = dir.File("big.png");
        var (code, stdout, err) = GenerateCommandTests.Run("upscale", "--model", Case("realesrgan_x2plus_layout_nf16_nb1.pth"),
            "--image", Case("input_28x20.png"), "--output", output, "--tile", "32");
        Assert.True(code == 0, err);
        Assert.Contains("big.png", stdout);
        var (w, h, rgb) = PngFile.Decode(output);
        using var upscaler = Upscaler.Load(Case("realesrgan_x2plus_layout_nf16_nb1.pth"));
        var expected = upscaler.Upscale(ImageFile.Load(Case("input_28x20.png")));
        Assert.Equal((expected.Width, expected.Height), (w, h));
        Assert.Equal(expected.Rgb, rgb);
    }

    [Theory]
    [InlineData("--scale", "0")]
    [InlineData("--tile", "5")]
    public void Cli_refuses_bad_options_in_one_line(string option, string value)
    {
        using var dir = new TempDir();
        var (code, _, err) = GenerateCommandTests.Run("upscale", "--model", Case("compact_x4_nf16.pth"),
            "--image", Case("input_28x20.png"), "--output", dir.File("out.png"), option, value);
        Assert.Equal(2, code);
        Assert.Contains(option, err);
        Assert.Single(err.Trim().Split('\n'));
        Assert.False(File.Exists(dir.File("out.png")));
    }

    [Fact]
    public void Hires_fix_takes_an_upscaler_file()
    {
        new SharpDiffusion.Pipelines.HiresFixOptions { Upscaler = Case("compact_x4_nf16.pth") }.Validate();
        var missing = Assert.Throws<ArgumentException>(() =>
            new SharpDiffusion.Pipelines.HiresFixOptions { Upscaler = "/nowhere/4x-UltraSharp.pth" }.Validate());
        Assert.Contains("/nowhere/4x-UltraSharp.pth", missing.Message);
    }
}
