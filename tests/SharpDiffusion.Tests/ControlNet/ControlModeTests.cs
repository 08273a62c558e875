using SharpDiffusion.Conditioning;
using SharpDiffusion.Families;
using SharpDiffusion.Imaging;
using SharpDiffusion.Models;
using SharpDiffusion.Models.ControlNet;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Tests.Pipelines;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.ControlNet;

/// <summary>
/// sd-webui-controlnet's control modes (hook.py) on the golden tiny ControlNet, through the run the denoiser uses: "My prompt
/// is more important" multiplies residual i by weight · 0.825^(12 − i) (computed here from the formula), "ControlNet is more
/// important" does that and leaves the unconditional rows at zero; and --tiling makes the ControlNet's convs circular.
/// </summary>
[Collection(ProcessWide.Settings)]
public class ControlModeTests(ITestOutputHelper output)
{
    static ControlNetModel Model => ControlNetParityTests.Model(ControlNetParityTests.Sd15ControlNet);
    static readonly RgbImage ControlImage = ImageFile.Load(Golden.Path("controlnet", "control_edges_64x64.png"));

    /// <summary>The residuals of one step-0 call on the golden inputs ([uncond; cond] rows), for a unit in <paramref name="mode"/>.</summary>
    static ControlNetResiduals Residuals(ControlMode mode, double weight)
    {
        var golden = Golden.Load("controlnet", "controlnet_tiny-controlnet-small-sd15.safetensors");
        var unit = new ControlNetUnit { Model = Model, Image = ControlImage, Scale = weight, ControlMode = mode };
        using var run = new ControlNetRun([unit], _ => throw new InvalidOperationException("the model is given"), guided: true, ScalarType.Float32);
        var input = new DenoiserInput(golden["sample"], 500f, new TextConditioning(golden["encoder_hidden_states"]), 0) { StepCount = 10 };
        return run.Residuals(input)!;
    }

    static IEnumerable<(Tensor Tensor, int Index)> All(ControlNetResiduals r) =>
        r.Down.Append(r.Mid).Select((t, i) => (t, i));

    [Fact]
    public void Prompt_more_important_fades_residual_i_by_0_825_to_the_12_minus_i()
    {
        using var _ = inference_mode();
        const double weight = 0.7;
        using var balanced = Residuals(ControlMode.Balanced, weight);
        using var prompt = Residuals(ControlMode.PromptMoreImportant, weight);
        Assert.Equal(12, balanced.Down.Count); // an SD 1.x-shaped ControlNet: the extension's 13 factors, the mid one 0.825⁰
        double worst = 0;
        foreach (var (r, i) in All(prompt))
        {
            // Balanced is weight × raw; the extension's soft injection is raw × (weight · 0.825^(12 − i)).
            using var expected = balanced.Down.Append(balanced.Mid).ElementAt(i) * Math.Pow(0.825, 12 - i);
            worst = Math.Max(worst, Golden.AssertClose(r, expected, rel: 1e-6, abs: 1e-7, what: $"residual {i}"));
        }
        output.WriteLine($"prompt mode vs balanced × 0.825^(12-i): max |diff| {worst:E2}");
        Assert.True(Golden.MaxAbsDiff(prompt.Down[0], balanced.Down[0]) > 1e-3, "the shallowest residual is faded");
    }

    [Fact]
    public void ControlNet_more_important_is_the_soft_injection_on_the_conditional_rows_only()
    {
        using var _ = inference_mode();
        using var prompt = Residuals(ControlMode.PromptMoreImportant, 1.0);
        using var controlNet = Residuals(ControlMode.ControlNetMoreImportant, 1.0);
        using var balanced = Residuals(ControlMode.Balanced, 1.0);
        double worst = 0;
        foreach (var (r, i) in All(controlNet))
        {
            Assert.Equal(0.0, r[0].abs().max().item<float>());                       // uncond row × cond_mark 0
            var sameRow = prompt.Down.Append(prompt.Mid).ElementAt(i)[1];
            worst = Math.Max(worst, Golden.AssertClose(r[1], sameRow, rel: 1e-5, what: $"residual {i}, cond row")); // × cond_mark 1
        }
        output.WriteLine($"controlnet mode cond rows vs prompt mode: max |diff| {worst:E2}");
        Assert.True(balanced.Mid[0].abs().max().item<float>() > 1e-3, "balanced residuals reach the unconditional row");
    }

    [Fact]
    public void Modes_are_named_as_the_extension_names_them_and_guess_mode_is_not_combined()
    {
        Assert.Equal(ControlMode.PromptMoreImportant, ControlModes.FromExtension("My prompt is more important"));
        Assert.Equal(ControlMode.ControlNetMoreImportant, ControlModes.FromExtension("2"));
        Assert.Null(ControlModes.FromExtension("3"));
        Assert.Null(ControlMode.Balanced.SoftInjectionScales(12));
        // SDXL's 9 + 1 residuals: the extension keeps the first 10 of its 13 factors.
        Assert.Equal(Enumerable.Range(0, 10).Select(i => Math.Pow(0.825, 12 - i)), ControlMode.PromptMoreImportant.SoftInjectionScales(9)!);
        var unit = new ControlNetUnit { Model = Model, Image = ControlImage, GuessMode = true, ControlMode = ControlMode.PromptMoreImportant };
        var e = Assert.Throws<ArgumentException>(() => unit.Validate(0));
        output.WriteLine(e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }

    [Fact]
    public void A_generation_in_each_mode_differs_and_writes_its_control_mode()
    {
        var pipeline = PipelineParityTests.Pipeline("models/small-sd15");
        var options = new GenerationOptions { Prompts = ["a small house under the sun"], NumInferenceSteps = 4, Width = 64, Height = 64, Seed = 9 };
        ControlNetUnit Unit(ControlMode mode) => new()
        {
            Model = Model, Image = ControlImage, ControlMode = mode,
            InfoText = ImageOutput.ControlNetInfo("none", "tiny", 1, "Just Resize", 64, -1, -1, 0, 1, false, mode.ExtensionName()),
        };
        var images = new List<Tensor>();
        foreach (var mode in Enum.GetValues<ControlMode>())
        {
            var call = options with { ControlNets = [Unit(mode)] };
            using var result = pipeline.Generate(call);
            images.Add(result.ImageFloat.clone());
            Assert.Contains($"Control Mode: {mode.ExtensionName()}\"", ImageOutput.InfoTextFor(call, result, result.Images[0], "small-sd15"));
        }
        double promptVsBalanced = Golden.MaxAbsDiff(images[1], images[0]), controlNetVsPrompt = Golden.MaxAbsDiff(images[2], images[1]);
        output.WriteLine($"prompt vs balanced {promptVsBalanced:E2}, controlnet vs prompt {controlNetVsPrompt:E2}");
        Assert.True(promptVsBalanced > 1e-3 && controlNetVsPrompt > 1e-3);
        foreach (var image in images) image.Dispose();
    }

    [Fact]
    public void With_tiling_the_controlnet_commutes_with_a_wraparound_shift()
    {
        // 128×128 control image, 16×16 latents; a shift by 8 latent pixels (64 image pixels) is a whole cell of the deepest
        // level (the ControlNet halves 16 → 2) and of the conditioning embedding's ×8, so downsampling commutes too.
        using var _ = inference_mode();
        var golden = Golden.Load("controlnet", "controlnet_tiny-controlnet-small-sd15.safetensors");
        using var generator = new Generator(11);
        using var latents = randn([2, 4, 16, 16], generator: generator);
        var big = PictureResize.Lanczos(ControlImage, 128, 128);
        const long shift = 8;
        var shiftedImage = new RgbImage(128, 128, Roll(big, (int)shift * 8));
        var conditioning = new TextConditioning(golden["encoder_hidden_states"]);
        double Mismatch(bool tiling)
        {
            ControlNetResiduals Run(Tensor x, RgbImage image)
            {
                using var run = new ControlNetRun([new ControlNetUnit { Model = Model, Image = image }], _ => null!, guided: true, ScalarType.Float32, tiling);
                return run.Residuals(new DenoiserInput(x, 400f, conditioning, 0) { StepCount = 1 })!;
            }
            using var shiftedInput = latents.roll(shift, 3);
            using var shifted = Run(shiftedInput, shiftedImage);
            using var direct = Run(latents, big);
            double worst = 0;
            foreach (var (r, i) in All(direct))
            {
                long scale = r.shape[3] * shift / 16;                                 // the shift at this residual's size
                using var rolled = r.roll(scale, 3);
                worst = Math.Max(worst, Golden.MaxAbsDiff(shifted.Down.Append(shifted.Mid).ElementAt(i), rolled));
            }
            return worst;
        }
        double plain = Mismatch(false), tiled = Mismatch(true), plainAgain = Mismatch(false);
        output.WriteLine($"wrap-around shift mismatch: tiled {tiled:E2}, plain {plain:E2}");
        Assert.True(tiled < 1e-4, $"with tiling a shifted input gives shifted residuals (max diff {tiled})");
        Assert.True(plain > 1e-3, $"without tiling the edges break the shift ({plain})");
        Assert.Equal(plain, plainAgain); // the run gave the model its zero padding back
        Assert.DoesNotContain(Model.modules().OfType<TorchSharp.Modules.Conv2d>(), c => c.padding_mode == TorchSharp.PaddingModes.Circular);
    }

    [Fact]
    public void Cli_control_mode_sets_each_units_mode_and_writes_it_to_the_infotext()
    {
        using var dir = new TempDir();
        (int Code, string Err) Generate(string file, params string[] more)
        {
            var (code, _, err) = Cli.GenerateCommandTests.Run(["generate", "--model", Golden.Path("models", "small-sd15"), "--prompt", "a small house",
                "--seed", "3", "--steps", "3", "--controlnet", Golden.Path("models", "tiny-controlnet-small-sd15"),
                "--control-image", Golden.Path("controlnet", "control_edges_64x64.png"), "--output", dir.File(file), .. more]);
            return (code, err);
        }
        var balanced = Generate("balanced.png");
        var controlNet = Generate("controlnet.png", "--control-mode", "controlnet");
        Assert.True(balanced.Code == 0 && controlNet.Code == 0, balanced.Err + controlNet.Err);
        Assert.Contains("Control Mode: Balanced\"", Server.Api.Parameters(File.ReadAllBytes(dir.File("balanced.png"))));
        Assert.Contains("Control Mode: ControlNet is more important\"", Server.Api.Parameters(File.ReadAllBytes(dir.File("controlnet.png"))));
        Assert.NotEqual(ImageFile.Load(dir.File("balanced.png")).Rgb, ImageFile.Load(dir.File("controlnet.png")).Rgb);

        var bad = Generate("bad.png", "--control-mode", "strong");
        output.WriteLine(bad.Err);
        Assert.NotEqual(0, bad.Code);
        Assert.Contains("--control-mode strong: use balanced, prompt", bad.Err);
        var twice = Generate("twice.png", "--control-mode", "prompt", "--control-mode", "balanced");
        Assert.Contains("Give --control-mode once (for every ControlNet) or once per --controlnet (1); got 2.", twice.Err);
    }

    /// <summary>The picture's columns rolled right by <paramref name="pixels"/> (the last ones wrap to the left).</summary>
    static byte[] Roll(RgbImage image, int pixels)
    {
        var rgb = new byte[image.Rgb.Length];
        for (int y = 0; y < image.Height; y++)
            for (int x = 0; x < image.Width; x++)
                Array.Copy(image.Rgb, (y * image.Width + x) * 3, rgb, (y * image.Width + (x + pixels) % image.Width) * 3, 3);
        return rgb;
    }
}
