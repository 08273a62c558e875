using SharpDiffusion.Tests.Loading;
using static SharpDiffusion.Tests.Cli.GenerateCommandTests;

namespace SharpDiffusion.Tests.Cli;

/// <summary>`--text-encoder FILE` (repeatable) reaches the SD3 single-file loader from generate and convert.</summary>
[Collection(ProcessWide.Settings)]
public class Sd3SingleFileCommandTests
{
    [Theory]
    [InlineData("generate")]
    [InlineData("convert")]
    public void A_text_encoder_file_that_holds_none_is_a_one_line_error(string command)
    {
        using var dir = new TempDir();
        string file = dir.File("sd35.safetensors"), notAnEncoder = Golden.Path("v3", "models", "tiny-sd35", "vae", "diffusion_pytorch_model.safetensors");
        Sd3FileWriter.Write("tiny-sd35", file, clips: false, t5: false);
        string[] args = command == "generate"
            ? ["generate", "--model", file, "--text-encoder", notAnEncoder, "--prompt", "x", "--output", dir.File("o.png")]
            : ["convert", "--model", file, "--text-encoder", notAnEncoder, "--output", dir.File("out")];
        var (code, _, err) = Run(args);
        Assert.Equal(2, code);
        Assert.Contains($"{notAnEncoder}: no text encoder found", err);
        Assert.Single(err.Trim().Split('\n'));
    }
}
