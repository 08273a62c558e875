using SharpDiffusion.Imaging;
using SharpDiffusion.Tests.Cli;

namespace SharpDiffusion.Tests.Lora;

/// <summary>`generate --lora`, `--lora-dir` with &lt;lora:…&gt; tags, `--embedding`: the golden images from the command line.</summary>
[Collection(ProcessWide.Settings)]
public class LoraCommandTests
{
    static readonly string SmallSd = Golden.Path("models", "small-sd15");
    const string Prompt = "a photograph of an astronaut riding a horse";
    static readonly string[] Euler10 = ["--seed", "42", "--steps", "10", "--guidance", "7.5", "--scheduler", "EulerDiscreteScheduler"];

    static void AssertWithinOneLevel(string png, params string[] golden) => Golden.AssertPngWithinOneLevel(png, golden);

    [Fact]
    public void Lora_with_scale_reproduces_the_golden_png_and_records_its_hash()
    {
        using var dir = new TempDir();
        string output = dir.File("out.png");
        var (code, _, err) = GenerateCommandTests.Run(["generate", "--model", SmallSd, "--prompt", Prompt, .. Euler10,
            "--lora", LoraGoldenTests.KohyaFile + ":0.5", "--output", output]);
        Assert.True(code == 0, err);
        AssertWithinOneLevel(output, "lora", "pipelines", "lora_scale0.5_euler_seed42_10steps_g7.5.safetensors");
        Assert.Contains("Lora hashes: \"small-sd15_kohya_lora: b82f7d71af47\"", PngFile.ReadText(File.ReadAllBytes(output))["parameters"]);
    }

    [Fact]
    public void Prompt_tag_finds_the_lora_in_lora_dir()
    {
        using var dir = new TempDir();
        File.Copy(LoraGoldenTests.KohyaFile, dir.File("astro.safetensors"));
        string output = dir.File("out.png");
        var (code, _, err) = GenerateCommandTests.Run(["generate", "--model", SmallSd, "--prompt", Prompt + "<lora:astro:1>", .. Euler10,
            "--prompt-syntax", "a1111", "--lora-dir", dir.Path, "--output", output]);
        Assert.True(code == 0, err);
        AssertWithinOneLevel(output, "lora", "pipelines", "lora_scale1.0_euler_seed42_10steps_g7.5.safetensors");
    }

    [Fact]
    public void Missing_tagged_lora_is_a_one_line_error()
    {
        using var dir = new TempDir();
        var (code, _, err) = GenerateCommandTests.Run("generate", "--model", SmallSd, "--prompt", "a cat <lora:gone:0.8>", "--steps", "1",
            "--prompt-syntax", "a1111", "--lora-dir", dir.Path, "--output", dir.File("out.png"));
        Assert.Equal(2, code);
        Assert.Contains("gone.safetensors", err);
        Assert.Single(err.Trim().Split('\n'));
    }

    [Fact]
    public void Embedding_with_token_reproduces_the_golden_png()
    {
        using var dir = new TempDir();
        string output = dir.File("out.png");
        var (code, stdout, err) = GenerateCommandTests.Run(["generate", "--model", SmallSd, "--prompt", "a photo of a <cat-toy-st> on a beach", .. Euler10,
            "--embedding", Golden.Path("textual_inversion", "cat-toy-2v_a1111_emb_params.safetensors") + ":<cat-toy-st>", "--output", output]);
        Assert.True(code == 0, err);
        Assert.Contains("<cat-toy-st> <cat-toy-st>_1", stdout);
        AssertWithinOneLevel(output, "textual_inversion", "pipelines", "ti_a1111st_cat-toy-st_euler_seed42_10steps_g7.5.safetensors");
    }
}
