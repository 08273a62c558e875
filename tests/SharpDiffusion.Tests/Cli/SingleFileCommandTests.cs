using SharpDiffusion.Imaging;
using static SharpDiffusion.Tests.Cli.GenerateCommandTests;

namespace SharpDiffusion.Tests.Cli;

/// <summary>`generate --model FILE.safetensors` works as with a folder; `convert` writes a folder that generates the same PNG.</summary>
[Collection(ProcessWide.Settings)]
public class SingleFileCommandTests
{
    static string File15 => Golden.Path("single_file", "small-sd15.safetensors");
    static string Yaml15 => Golden.Path("single_file", "v1-inference-small-sd15.yaml");
    static string TextConfig15 => Golden.Path("models", "small-sd15", "text_encoder", "config.json");

    [Fact]
    public void Generate_from_a_single_file_writes_the_folder_image_with_the_model_hash()
    {
        using var dir = new TempDir();
        string fromFile = dir.File("file.png"), fromFolder = dir.File("folder.png");
        string[] common = ["--prompt", "a photograph of an astronaut riding a horse", "--seed", "42", "--steps", "4", "--scheduler", "LMS"];
        var (code, _, err) = Run(["generate", "--model", File15, "--config", Yaml15, "--text-encoder-config", TextConfig15, "--output", fromFile, .. common]);
        Assert.True(code == 0, err);
        (code, _, err) = Run(["generate", "--model", Golden.Path("models", "small-sd15"), "--output", fromFolder, .. common]);
        Assert.True(code == 0, err);

        Assert.Equal(PngFile.Decode(fromFolder).Rgb, PngFile.Decode(fromFile).Rgb);
        string parameters = PngFile.ReadText(File.ReadAllBytes(fromFile))["parameters"];
        Assert.Contains("Size: 64x64, Model hash: 58e8644c13, Model: small-sd15", parameters);
        Assert.DoesNotContain("Model hash", PngFile.ReadText(File.ReadAllBytes(fromFolder))["parameters"]);
    }

    [Fact]
    public void Convert_writes_a_folder_that_generate_loads()
    {
        using var dir = new TempDir();
        string folder = dir.File("small-sd15-diffusers");
        var (code, _, err) = Run("convert", "--model", File15, "--config", Yaml15, "--text-encoder-config", TextConfig15, "--output", folder);
        Assert.True(code == 0, err);
        foreach (string f in (string[])["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "vae/config.json",
                     "text_encoder/model.safetensors", "tokenizer/vocab.json", "tokenizer/merges.txt", "scheduler/scheduler_config.json"])
            Assert.True(File.Exists(Path.Combine(folder, f)), f);
        (code, _, err) = Run("generate", "--model", folder, "--prompt", "x", "--steps", "2", "--output", dir.File("out.png"));
        Assert.True(code == 0, err);
    }

    [Fact]
    public void Single_file_errors_are_one_line_with_exit_code_2()
    {
        using var dir = new TempDir();
        var (code, _, err) = Run("generate", "--model", Golden.Path("single_file", "tiny-sdxl.safetensors"), "--prompt", "x", "--output", dir.File("o.png"));
        Assert.Equal(2, code);
        Assert.Contains("--text-encoder-config", err); // the tiny SDXL file's text encoders are of no standard size
        Assert.Single(err.Trim().Split('\n'));

        (code, _, err) = Run("generate", "--model", Golden.Path("models", "small-sd15"), "--config", Yaml15, "--prompt", "x", "--output", dir.File("o.png"));
        Assert.Equal(2, code);
        Assert.Contains("single-file checkpoint", err);

        (code, _, err) = Run("convert", "--model", File15, "--output", dir.File("x"));
        Assert.Equal(2, code);
        Assert.Contains("--text-encoder-config", err);
        Assert.False(Directory.Exists(dir.File("x")));
    }
}
