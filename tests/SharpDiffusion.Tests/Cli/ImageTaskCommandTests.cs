using SharpDiffusion.Imaging;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Cli;

/// <summary>`generate --image [--mask]`: img2img and inpainting from the command line, and their bad input.</summary>
[Collection(ProcessWide.Settings)]
public class ImageTaskCommandTests
{
    static readonly string TinySd = Golden.Path("models", "tiny-sd");
    static readonly string TinySdInpaint = Golden.Path("models", "tiny-sd-inpaint");
    static readonly string Img2ImgInit = Golden.Path("img2img", "init_64x64.png");
    static readonly string InpaintInit = Golden.Path("inpaint", "init_64x64.png");
    static readonly string InpaintMask = Golden.Path("inpaint", "mask_64x64.png");
    const string Prompt = "a photograph of an astronaut riding a horse";

    static (int Code, string Out, string Err) Run(params string[] args) => GenerateCommandTests.Run(args);

    static void AssertWithinOneLevel(string png, string goldenFile) => Golden.AssertPngWithinOneLevel(png, goldenFile.Split('/'));

    [Fact]
    public void Img2img_reproduces_the_golden_png_and_writes_the_denoising_strength()
    {
        using var dir = new TempDir();
        string output = dir.File("out.png");
        var (code, stdout, err) = Run("generate", "--model", TinySd, "--prompt", Prompt, "--image", Img2ImgInit, "--strength", "0.75",
            "--seed", "42", "--steps", "20", "--guidance", "7.5", "--scheduler", "LMS", "--output", output);
        Assert.True(code == 0, err);
        Assert.Contains("15 of 20 steps", stdout);
        AssertWithinOneLevel(output, "img2img/tiny-sd/lms_s0.75_seed42_20steps_g7.5.safetensors");
        string parameters = PngFile.ReadText(File.ReadAllBytes(output))["parameters"];
        Assert.EndsWith("Steps: 20, Sampler: LMS, CFG scale: 7.5, Seed: 42, Size: 64x64, Model: tiny-sd, Denoising strength: 0.75", parameters);
    }

    [Fact]
    public void Inpainting_defaults_to_strength_1_as_diffusers_and_reproduces_the_golden_png()
    {
        using var dir = new TempDir();
        string output = dir.File("out.png");
        var (code, _, err) = Run("generate", "--model", TinySdInpaint, "--prompt", Prompt, "--image", InpaintInit, "--mask", InpaintMask,
            "--seed", "42", "--steps", "20", "--guidance", "7.5", "--scheduler", "DDIMScheduler", "--output", output);
        Assert.True(code == 0, err);
        AssertWithinOneLevel(output, "inpaint/tiny-sd-inpaint/ddim_s1.0_seed42_20steps_g7.5.safetensors");
        Assert.Contains("Denoising strength: 1", PngFile.ReadText(File.ReadAllBytes(output))["parameters"]);
    }

    /// <summary>With --paste-original the pixels outside the mask are the original's, byte for byte; inside they are new.
    /// --invert-mask swaps the two areas.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Paste_original_keeps_the_unmasked_pixels_exactly(bool invert)
    {
        using var dir = new TempDir();
        string output = dir.File("out.png");
        var args = new List<string> { "generate", "--model", TinySd, "--prompt", Prompt, "--image", InpaintInit, "--mask", InpaintMask,
            "--seed", "3", "--steps", "4", "--paste-original", "--output", output };
        if (invert) args.Add("--invert-mask");
        var (code, _, err) = Run([.. args]);
        Assert.True(code == 0, err);

        var (_, _, result) = PngFile.Decode(output);
        var original = ImageFile.Load(InpaintInit).Rgb;
        var mask = ImageFile.Load(InpaintMask).Luma();
        int keptDiffer = 0, repaintedSame = 0;
        for (int p = 0; p < mask.Length; p++)
        {
            bool repaint = (mask[p] >= 128) != invert;
            bool same = result[3 * p] == original[3 * p] && result[3 * p + 1] == original[3 * p + 1] && result[3 * p + 2] == original[3 * p + 2];
            if (!repaint && !same) keptDiffer++;
            if (repaint && same) repaintedSame++;
        }
        Assert.Equal(0, keptDiffer);
        Assert.True(repaintedSame < mask.Length / 20, $"{repaintedSame} repainted pixels kept the original value");
    }

    [Fact]
    public void A_mask_of_another_size_is_resized_with_a_warning()
    {
        using var dir = new TempDir();
        var mask = ImageFile.Load(InpaintMask).Resize(32, 48);
        string maskPath = dir.File("mask.png");
        PngFile.Save(maskPath, mask.Width, mask.Height, mask.Rgb);
        var (code, stdout, err) = Run("generate", "--model", TinySd, "--prompt", Prompt, "--image", InpaintInit, "--mask", maskPath,
            "--steps", "2", "--output", dir.File("out.png"));
        Assert.True(code == 0, err);
        Assert.Contains("warning: The mask (32x48) is not the image's size (64x64); it was resized to it.", stdout);
        Assert.True(File.Exists(dir.File("out.png")));
    }

    [Fact]
    public void An_all_black_mask_warns_that_nothing_is_repainted()
    {
        using var dir = new TempDir();
        string maskPath = dir.File("black.png");
        PngFile.Save(maskPath, 64, 64, new byte[64 * 64 * 3]);
        var (code, stdout, err) = Run("generate", "--model", TinySd, "--prompt", Prompt, "--image", InpaintInit, "--mask", maskPath,
            "--steps", "2", "--paste-original", "--output", dir.File("out.png"));
        Assert.True(code == 0, err);
        Assert.Contains("warning: The mask is all black", stdout);
        Assert.Equal(ImageFile.Load(InpaintInit).Rgb, PngFile.Decode(dir.File("out.png")).Rgb);
    }

    public static IEnumerable<object[]> BadInputs()
    {
        yield return ["--strength 1.5", new[] { "--image", Img2ImgInit, "--strength", "1.5" }, "Strength must be between 0 and 1; got 1.5"];
        yield return ["--strength -0.1", new[] { "--image", Img2ImgInit, "--strength", "-0.1" }, "Strength must be between 0 and 1"];
        yield return ["strength runs no step", new[] { "--image", Img2ImgInit, "--strength", "0.04", "--steps", "20" }, "raise the strength to at least 0.05"];
        yield return ["mask without image", new[] { "--mask", InpaintMask }, "--mask needs --image"];
        yield return ["strength without image", new[] { "--strength", "0.5" }, "need --image"];
        yield return ["missing image", new[] { "--image", "/nonexistent/init.png" }, "/nonexistent/init.png"];
        yield return ["folder as image", new[] { "--image", Golden.Path("img2img") }, "is a folder, not an image file"];
        yield return ["bad mask blur", new[] { "--image", Img2ImgInit, "--mask", InpaintMask, "--mask-blur", "-3" }, "Mask blur must be between 0"];
        yield return ["bad clip skip", new[] { "--clip-skip", "0" }, "Clip skip must be at least 1"];
        yield return ["clip skip past the encoder", new[] { "--clip-skip", "40" }, "does not fit this text encoder"];
        yield return ["bad prompt syntax", new[] { "--prompt-syntax", "markdown" }, "--prompt-syntax must be plain or a1111"];
    }

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void Bad_input_fails_with_one_line_and_writes_nothing(string what, string[] extra, string message)
    {
        using var dir = new TempDir();
        var (code, _, err) = Run(["generate", "--model", TinySd, "--prompt", "x", "--output", dir.File("out.png"), .. extra]);
        Assert.True(code == 2, $"{what}: exit {code}, {err}");
        Assert.StartsWith("error: ", err);
        Assert.Single(err.TrimEnd('\n').Split('\n'));
        Assert.Contains(message, err);
        Assert.Empty(Directory.GetFiles(dir.Path));
    }

    [Theory]
    [InlineData("garbage")]
    [InlineData("truncated")]
    [InlineData("empty")]
    public void A_damaged_image_is_named_in_one_line(string kind)
    {
        using var dir = new TempDir();
        string bad = dir.File("bad.png");
        var png = File.ReadAllBytes(Img2ImgInit);
        File.WriteAllBytes(bad, kind switch
        {
            "garbage" => Enumerable.Range(0, 500).Select(i => (byte)(i * 7)).ToArray(),
            "truncated" => png[..(png.Length / 2)],
            _ => [],
        });
        string output = dir.File("out.png");
        var (code, _, err) = Run("generate", "--model", TinySd, "--prompt", "x", "--image", bad, "--output", output);
        Assert.Equal(2, code);
        Assert.StartsWith($"error: {bad}", err);
        Assert.Single(err.TrimEnd('\n').Split('\n'));
        Assert.False(File.Exists(output));
    }
}
