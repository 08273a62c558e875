using SharpDiffusion.Imaging;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Cli;

/// <summary>The CLI end to end, in process: files, metadata, exit codes, one-line errors.</summary>
[Collection(ProcessWide.Settings)]
public class GenerateCommandTests
{
    static readonly string TinySd = Golden.Path("models", "tiny-sd");

    internal static (int Code, string Out, string Err) Run(params string[] args)
    {
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        var (o, e) = (new StringWriter(), new StringWriter());
        Console.SetOut(o);
        Console.SetError(e);
        try { return (SharpDiffusion.Cli.Cli.Run(args), o.ToString(), e.ToString()); }
        finally
        {
            Console.SetOut(oldOut);
            Console.SetError(oldErr);
        }
    }

    [Fact]
    public void Seed_example_reproduces_the_golden_png_with_parameters()
    {
        using var dir = new TempDir();
        string output = dir.File("out.png");
        var (code, _, err) = Run("generate", "--model", TinySd, "--prompt", "a photograph of an astronaut riding a horse",
            "--seed", "42", "--steps", "20", "--guidance", "8", "--scheduler", "LMS", "--output", output);
        Assert.True(code == 0, err);

        Golden.AssertPngWithinOneLevel(output, "pipelines", "tiny-sd", "lms_seed42_20steps_g8.safetensors");

        string parameters = PngFile.ReadText(File.ReadAllBytes(output))["parameters"];
        Assert.StartsWith("a photograph of an astronaut riding a horse\n", parameters);
        Assert.Contains("Steps: 20, Sampler: LMS, CFG scale: 8, Seed: 42, Size: 64x64, Model: tiny-sd", parameters);
        Assert.DoesNotContain("Negative prompt:", parameters);
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp"));
    }

    [Fact]
    public void Several_images_are_numbered_in_pipeline_order_with_their_own_prompts()
    {
        using var dir = new TempDir();
        var (code, _, err) = Run("generate", "--model", TinySd, "--prompt", "a red cat", "--prompt", "a blue dog",
            "--negative-prompt", "blurry", "--images-per-prompt", "2", "--steps", "2", "--seed", "1", "--output", dir.File("img.png"));
        Assert.True(code == 0, err);
        var names = Directory.GetFiles(dir.Path).Select(Path.GetFileName).Order().ToArray();
        Assert.Equal(["img-0.png", "img-1.png", "img-2.png", "img-3.png"], names.Select(n => n!).ToArray());
        var prompts = names.Select(n => PngFile.ReadText(File.ReadAllBytes(dir.File(n!)))["parameters"].Split('\n')).ToArray();
        Assert.Equal(["a red cat", "a red cat", "a blue dog", "a blue dog"], prompts.Select(p => p[0]));
        Assert.All(prompts, p => Assert.Equal("Negative prompt: blurry", p[1]));
    }

    [Theory]
    [InlineData("--width", "60")]
    [InlineData("--scheduler", "no-such-sampler")]
    [InlineData("--steps", "zero")]
    [InlineData("--frobnicate", "1")]
    public void Bad_input_fails_with_one_line_before_any_output(string option, string value)
    {
        using var dir = new TempDir();
        var (code, _, err) = Run("generate", "--model", TinySd, "--prompt", "x", option, value, "--output", dir.File("out.png"));
        Assert.Equal(2, code);
        Assert.StartsWith("error: ", err);
        Assert.Single(err.TrimEnd('\n').Split('\n'));
        Assert.Empty(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void A_long_prompt_is_truncated_with_a_warning_in_plain_syntax_and_read_whole_in_a1111_syntax()
    {
        using var dir = new TempDir();
        string prompt = string.Join(", ", Enumerable.Repeat("a (red:1.2) cat", 40));
        var (code, plainOut, err) = Run("generate", "--model", TinySd, "--prompt", prompt, "--steps", "2", "--seed", "1", "--output", dir.File("plain.png"));
        Assert.True(code == 0, err);
        Assert.Contains("warning: The prompt \"a (red:1.2) cat", plainOut);

        (code, var a1111Out, err) = Run("generate", "--model", TinySd, "--prompt", prompt, "--prompt-syntax", "a1111", "--clip-skip", "2",
            "--steps", "2", "--seed", "1", "--output", dir.File("a1111.png"));
        Assert.True(code == 0, err);
        Assert.DoesNotContain("warning:", a1111Out);
        string parameters = PngFile.ReadText(File.ReadAllBytes(dir.File("a1111.png")))["parameters"];
        Assert.StartsWith(prompt + "\n", parameters);
        Assert.EndsWith("Model: tiny-sd, Clip skip: 2", parameters);
        Assert.NotEqual(PngFile.Decode(dir.File("plain.png")).Rgb, PngFile.Decode(dir.File("a1111.png")).Rgb);
    }

    [Fact]
    public void Missing_model_folder_is_named()
    {
        var (code, _, err) = Run("generate", "--model", "/nonexistent/model", "--prompt", "x");
        Assert.Equal(2, code);
        Assert.Contains("/nonexistent/model", err);
    }

    [Fact]
    public void Help_documents_every_option_with_its_default()
    {
        var (code, output, _) = Run("generate", "--help");
        Assert.Equal(0, code);
        foreach (var option in new[] { "--model", "--prompt", "--negative-prompt", "--width", "--height", "--steps", "--guidance",
                     "--seed", "--scheduler", "--images-per-prompt", "--output" })
            Assert.Contains(option, output);
    }

    [Theory]
    [InlineData("generate")]
    [InlineData("bench")]
    [InlineData("train")]
    [InlineData("evaluate")]
    public void Every_command_documents_every_option_it_reads(string command)
    {
        var (code, output, _) = Run(command, "--help");
        Assert.Equal(0, code);
        var options = command switch
        {
            "generate" => SharpDiffusion.Cli.GenerateCommand.Options,
            "bench" => SharpDiffusion.Cli.Bench.BenchCommand.Options,
            "train" => SharpDiffusion.Cli.TrainCommand.Options,
            _ => SharpDiffusion.Cli.EvaluateCommand.Options,
        };
        foreach (var option in options.Where(o => !o.Hidden))
            Assert.Contains($"--{option.Name}", output);
        Assert.DoesNotContain("--report", output);
    }

    [Fact]
    public void Shell_completion_suggests_options()
    {
        var (code, output, _) = Run("[suggest:14]", "generate --mas");
        Assert.Equal(0, code);
        Assert.Equal(["--mask", "--mask-blur"], output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
    }

    [Fact]
    public void Scheduler_list_names_the_samplers()
    {
        var (code, output, _) = Run("generate", "--scheduler", "list");
        Assert.Equal(0, code);
        foreach (var name in SharpDiffusion.Schedulers.SchedulerFactory.Names)
            Assert.Contains(name.Name, output);
    }
}
