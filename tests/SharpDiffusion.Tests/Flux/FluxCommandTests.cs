using SharpDiffusion.Tests.Cli;

namespace SharpDiffusion.Tests.Flux;

/// <summary>`generate --model &lt;Flux folder&gt; [--transformer FILE]` end to end, in process: the PNG is diffusers' FluxPipeline
/// image, with the folder's transformer or the Q8_0 GGUF in its place.</summary>
[Collection(ProcessWide.Settings)]
public class FluxCommandTests
{
    [Theory]
    [InlineData("tiny-flux-schnell", "schnell_64x96_seed6_4steps")]
    [InlineData("tiny-flux-dev", "single_file/gguf_q8_0_seed19_4steps")]
    public void Generate_writes_the_golden_png(string model, string name)
    {
        var options = FluxGolden.Options(FluxGolden.Info(model, name));
        using var dir = new TempDir();
        string output = dir.File("out.png");
        string[] transformer = FluxGolden.TransformerFileOf(name) is { } file ? ["--transformer", file] : [];
        var (code, _, err) = GenerateCommandTests.Run(["generate", "--model", FluxGolden.ModelDir(model), "--prompt", options.Prompts[0],
            "--seed", options.Seed!.Value.ToString(), "--steps", options.NumInferenceSteps.ToString(),
            "--guidance", options.GuidanceScale.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--width", options.Width!.Value.ToString(), "--height", options.Height!.Value.ToString(), "--output", output, .. transformer]);
        Assert.True(code == 0, err);
        Golden.AssertPngWithinOneLevel(output, FluxGolden.File(model, name));
    }
}
