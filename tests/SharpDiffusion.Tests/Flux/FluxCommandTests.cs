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

    /// <summary>`generate --model flux1-*.safetensors --text-encoder clip_l --text-encoder t5xxl_fp16 --vae ae.safetensors`
    /// without --steps or --guidance: the files assemble the pipeline, schnell's defaults (4 steps, guidance 0, 256 T5
    /// tokens, told on the console) apply, and the PNG is the golden schnell case's.</summary>
    [Fact]
    public void Generate_from_component_files_with_schnells_defaults_writes_the_golden_png()
    {
        const string model = "tiny-flux-schnell", name = "schnell_64x96_seed6_4steps";
        var options = FluxGolden.Options(FluxGolden.Info(model, name));
        using var dir = new TempDir();
        var files = FluxComponentFileWriter.Write(model, dir.Path);
        string output = dir.File("out.png");
        var (code, stdout, err) = GenerateCommandTests.Run(["generate", "--model", files.Transformer, "--text-encoder", files.Clip, "--text-encoder", files.T5,
            "--vae", files.Vae, "--single-file-config", files.Config, "--prompt", options.Prompts[0], "--seed", options.Seed!.Value.ToString(),
            "--width", options.Width!.Value.ToString(), "--height", options.Height!.Value.ToString(), "--output", output]);
        Assert.True(code == 0, err);
        var schnell = SharpDiffusion.Families.Flux.FluxDefaults.Schnell;
        Assert.Equal((options.NumInferenceSteps, options.GuidanceScale, options.MaxSequenceLength), (schnell.NumInferenceSteps, schnell.GuidanceScale, schnell.MaxSequenceLength));
        Assert.Contains(schnell.ToString(), stdout);
        Golden.AssertPngWithinOneLevel(output, FluxGolden.File(model, name));
    }

    [Fact]
    public void Generate_with_a_flux_file_and_no_vae_says_which_file_to_download()
    {
        using var dir = new TempDir();
        var files = FluxComponentFileWriter.Write("tiny-flux-schnell", dir.Path);
        var (code, _, err) = GenerateCommandTests.Run(["generate", "--model", files.Transformer, "--text-encoder", files.Clip, "--text-encoder", files.T5,
            "--single-file-config", files.Config, "--prompt", "x", "--output", dir.File("out.png")]);
        Assert.NotEqual(0, code);
        Assert.Contains("--vae ae.safetensors", err);
        Assert.DoesNotContain(" at SharpDiffusion", err);
    }
}
