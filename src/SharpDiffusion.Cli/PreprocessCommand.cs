using SharpDiffusion.Imaging;
using SharpDiffusion.Imaging.ControlPreprocessors;

namespace SharpDiffusion.Cli;

/// <summary>`preprocess`: a ControlNet control map of a picture with a model-free preprocessor (canny, threshold,
/// invert, none), written as a PNG so it can be looked at and passed on as the control image.</summary>
public static class PreprocessCommand
{
    public static readonly OptionSpec[] Options =
    [
        new("module", OptionKind.Text, "the preprocessor: canny, threshold, invert or none (sd-webui-controlnet's names; default: canny)", "NAME"),
        new("image", OptionKind.Text, "the picture (PNG, JPEG or WebP)", "FILE"),
        new("output", OptionKind.Text, "the PNG to write", "FILE"),
        new("low", OptionKind.Number, "canny's low threshold, 1-255 (default: 100)", "N"),
        new("high", OptionKind.Number, "canny's high threshold, 1-255 (default: 200)", "N"),
        new("threshold", OptionKind.Number, "threshold's binarization level, 0-255 (default: 127)", "N"),
        new("resolution", OptionKind.Integer, "scale the short side to N pixels first, as the extension's processor_res (64-2048; default: the picture's own size)", "N"),
    ];

    public static int Run(CommandLine cl)
    {
        string moduleName = cl.String("module") ?? "canny";
        string input = cl.String("image") ?? throw new UsageException("--image FILE is required: the picture to make the map of.");
        string output = cl.String("output") ?? throw new UsageException("--output FILE is required: the PNG to write.");
        var module = ControlPreprocessor.Get(moduleName);
        string[] applies = module == ControlPreprocessor.Canny ? ["low", "high", "resolution"]
            : module == ControlPreprocessor.Threshold ? ["threshold", "resolution"] : [];
        foreach (string option in new[] { "low", "high", "threshold", "resolution" })
            if (cl.Given(option) && !applies.Contains(option))
                throw new UsageException($"--{option} does not apply to --module {module.Name}" +
                    (applies.Length == 0 ? "." : $" (it takes {string.Join(", ", applies.Select(o => "--" + o))})."));
        double a = Slider(cl, module.ThresholdA, module == ControlPreprocessor.Canny ? "low" : "threshold");
        double b = Slider(cl, module.ThresholdB, "high");
        AtomicFiles.CheckWritable(output);

        var image = ImageFile.Load(input);
        var map = cl.Int("resolution") is int resolution
            ? module.Run(image, PreprocessorParameter.Resolution.Require(resolution, "--resolution"), a, b)
            : module.RunAtOwnSize(image, a, b);
        AtomicFiles.WriteAll([(output, PngFile.Encode(map.Width, map.Height, map.Rgb))]);
        Progress.Line($"Wrote {AtomicFiles.Printable(output)} ({module.Name}, {map.Size})");
        return 0;
    }

    /// <summary>The option's value checked against the slider's range, or -1 (the slider's default) when not given.</summary>
    static double Slider(CommandLine cl, PreprocessorParameter? slider, string option) =>
        slider is not null && cl.Double(option) is double value ? slider.Require(value, $"--{option}") : -1;
}
