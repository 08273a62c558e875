using SharpDiffusion.Imaging;

namespace SharpDiffusion.Tests.Cli;

/// <summary>Where images go: unwritable destinations refused before any work, all-or-none sets, names printed safely,
/// AUTOMATIC1111's seed -1.</summary>
[Collection(ProcessWide.Settings)]
public class OutputCommandTests
{
    static readonly string TinySd = Golden.Path("models", "tiny-sd");

    static (int Code, string Out, string Err) Run(params string[] args) => GenerateCommandTests.Run(args);

    public static IEnumerable<object[]> Unwritable() =>
    [
        ["a folder", Path.GetTempPath().TrimEnd('/'), "is a folder"],
        ["a pseudo file system", "/proc/out.png", "Cannot write /proc/out.png: no file can be created in /proc"],
        ["a 300-character name", Path.Combine(Path.GetTempPath(), new string('n', 296) + ".png"), "file systems take at most 255"],
        ["a missing folder", "/nonexistent-folder/out.png", "does not exist"],
    ];

    [Theory]
    [MemberData(nameof(Unwritable))]
    public void An_unwritable_output_is_refused_before_loading_the_model(string what, string output, string message)
    {
        var (code, stdout, err) = Run("generate", "--model", TinySd, "--prompt", "x", "--steps", "1", "--output", output);
        Assert.True(code == 2, $"{what}: exit {code}, {err}");
        Assert.Contains(message, err);
        Assert.Single(err.TrimEnd('\n').Split('\n'));
        Assert.DoesNotContain("Opening model", stdout);
        Assert.DoesNotContain(".tmp", err);
        Assert.DoesNotContain(".probe", err); // the user's file is named, never our temporary one
    }

    [Fact]
    public void A_set_of_files_is_written_all_or_none_and_errors_name_the_users_path()
    {
        using var dir = new TempDir();
        string first = dir.File("a.png");
        var e = Assert.Throws<IOException>(() => AtomicFiles.WriteAll([(first, [1, 2, 3]), ("/proc/b.png", [4, 5, 6])]));
        Assert.StartsWith("Could not write /proc/b.png", e.Message);
        Assert.DoesNotContain(".tmp", e.Message);
        Assert.Empty(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void Control_characters_in_the_output_name_are_printed_escaped()
    {
        using var dir = new TempDir();
        string output = dir.File("out\u001b[31mred.png");
        var (code, stdout, err) = Run("generate", "--model", TinySd, "--prompt", "x", "--steps", "1", "--output", output);
        Assert.True(code == 0, err);
        Assert.True(File.Exists(output));
        Assert.False(stdout.Contains('\u001b'), "a raw ESC reached the terminal");
        Assert.Contains("out\\u001b[31mred.png", stdout);
    }

    [Fact]
    public void Seed_minus_one_is_random_and_never_written_negative()
    {
        using var dir = new TempDir();
        string output = dir.File("out.png");
        var (code, _, err) = Run("generate", "--model", TinySd, "--prompt", "x", "--steps", "1", "--seed", "-1", "--output", output);
        Assert.True(code == 0, err);
        string parameters = PngFile.ReadText(File.ReadAllBytes(output))["parameters"];
        var seed = long.Parse(System.Text.RegularExpressions.Regex.Match(parameters, @"Seed: (-?\d+)").Groups[1].Value);
        Assert.True(seed >= 0, parameters);

        (code, _, err) = Run("generate", "--model", TinySd, "--prompt", "x", "--seed", "-5", "--output", dir.File("neg.png"));
        Assert.Equal(2, code);
        Assert.Contains("The seed must be -1 (random) or a number from 0; got -5", err);
    }

    [Fact]
    public void An_absurd_guidance_scale_runs_with_a_warning()
    {
        using var dir = new TempDir();
        var (code, stdout, err) = Run("generate", "--model", TinySd, "--prompt", "x", "--steps", "1", "--guidance", "1e30", "--output", dir.File("out.png"));
        Assert.True(code == 0, err);
        Assert.Contains("warning: A guidance scale of 1E+30 is far outside the usual 1-20", stdout);
    }
}
