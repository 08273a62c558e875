using System.Globalization;
using SharpDiffusion.Imaging;
using SharpDiffusion.Imaging.ControlPreprocessors;
using SharpDiffusion.Adapters;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Schedulers;

namespace SharpDiffusion.Cli;

/// <summary>generate's ControlNet units: --controlnet with its --control-* options, paired in order.</summary>
internal static class ControlNetArguments
{
    public static readonly OptionSpec[] Options =
    [
        new("controlnet", OptionKind.Texts, "steer with a ControlNet: a diffusers ControlNet folder or an original-layout file (control_v11p_sd15_canny.pth / .safetensors); repeatable, one unit each, paired in order with --control-image", "FILE|DIR"),
        new("control-image", OptionKind.Texts, "the control image of each --controlnet (an edge, depth, pose map, already preprocessed); without --width/--height/--image it sets the output size, as diffusers", "PNG"),
        new("control-scale", OptionKind.Texts, "controlnet_conditioning_scale; given once: for every --controlnet, else once per unit (default: 1)", "X"),
        new("control-start", OptionKind.Texts, "control_guidance_start, the fraction of the steps before the ControlNet acts; once or once per unit (default: 0)", "X"),
        new("control-end", OptionKind.Texts, "control_guidance_end, the fraction of the steps after which it stops; once or once per unit (default: 1)", "X"),
        new("control-preprocess", OptionKind.Texts, "make each --control-image's map first, at the image's size, with sd-webui-controlnet's default thresholds: canny, threshold, invert or none; once or once per unit (default: none, the image is the map)", "NAME"),
        new("control-mode", OptionKind.Texts, "sd-webui-controlnet's control mode: balanced, prompt (\"My prompt is more important\": shallow residuals faded by 0.825^(12-i)) or controlnet (\"ControlNet is more important\": that, on the conditional rows only); once or once per unit (default: balanced)", "MODE"),
        new("guess-mode", OptionKind.Flag, "ControlNet guess mode: the ControlNets see only the conditional rows, shallow residuals scaled down, so they steer even with an empty prompt (default: off)"),
    ];

    /// <summary>--controlnet units, each with its --control-image and (once for all, or once per unit) scale, start, end;
    /// with no size and no --image the first control image's size, rounded down to a multiple of 8, as diffusers.</summary>
    public static GenerationOptions Apply(GenerationOptions options, CommandLine cl)
    {
        var models = cl.All("controlnet");
        var images = cl.All("control-image");
        if (models.Count == 0)
        {
            if (images.Count > 0 || cl.Given("control-scale") || cl.Given("control-start") || cl.Given("control-end") || cl.Given("control-preprocess") || cl.Given("control-mode") || cl.Flag("guess-mode"))
                throw new UsageException("--control-image, --control-scale, --control-start, --control-end, --control-preprocess, --control-mode and --guess-mode need --controlnet FILE|DIR.");
            return options;
        }
        if (images.Count != models.Count)
            throw new UsageException($"Give one --control-image per --controlnet ({models.Count}); got {images.Count}.");
        double[] PerUnit(string option, double fallback)
        {
            var given = cl.All(option);
            if (given.Count > 1 && given.Count != models.Count)
                throw new UsageException($"Give --{option} once (for every ControlNet) or once per --controlnet ({models.Count}); got {given.Count}.");
            var values = given.Select(v => double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) && double.IsFinite(d)
                ? d : throw new UsageException($"--{option} {v}: not a number.")).ToArray();
            return Enumerable.Range(0, models.Count).Select(i => values.Length == 0 ? fallback : values[Math.Min(i, values.Length - 1)]).ToArray();
        }
        double[] scales = PerUnit("control-scale", 1.0), starts = PerUnit("control-start", 0.0), ends = PerUnit("control-end", 1.0);
        var modules = Preprocessors(cl, models.Count);
        var modes = Modes(cl, models.Count);
        var units = models.Select((model, i) =>
        {
            var picture = ImageFile.Load(images[i]);
            // At the picture's own size (processor_res = its short side), so the map lines up with the image given.
            var module = modules[i];
            return new ControlNetUnit
            {
                ModelPath = model,
                Image = module.RunAtOwnSize(picture),
                Scale = scales[i],
                Start = starts[i],
                End = ends[i],
                GuessMode = cl.Flag("guess-mode"),
                ControlMode = modes[i],
                // The run stretches the map to the output size: the extension's "Just Resize".
                InfoText = ImageOutput.ControlNetInfo(module.Name, Path.GetFileNameWithoutExtension(Path.TrimEndingDirectorySeparator(model)), scales[i],
                    "Just Resize", Math.Min(picture.Width, picture.Height), module.ThresholdA?.Value ?? -1, module.ThresholdB?.Value ?? -1, starts[i], ends[i], false, modes[i].ExtensionName()),
            };
        }).ToList();
        for (int i = 0; i < units.Count; i++) units[i].Validate(i);
        if (options.Width is null && options.Height is null && options.Image is null)
            options = options with { Width = units[0].Image.Width / 8 * 8, Height = units[0].Image.Height / 8 * 8 };
        return options with { ControlNets = units };
    }

    /// <summary>--control-mode once (for every unit) or once per --controlnet; balanced without it.</summary>
    static ControlMode[] Modes(CommandLine cl, int count)
    {
        var names = cl.All("control-mode");
        if (names.Count > 1 && names.Count != count)
            throw new UsageException($"Give --control-mode once (for every ControlNet) or once per --controlnet ({count}); got {names.Count}.");
        var modes = names.Select(n => n.ToLowerInvariant() switch
        {
            "balanced" => ControlMode.Balanced,
            "prompt" => ControlMode.PromptMoreImportant,
            "controlnet" => ControlMode.ControlNetMoreImportant,
            _ => throw new UsageException($"--control-mode {n}: use balanced, prompt (my prompt is more important) or controlnet (ControlNet is more important)."),
        }).ToArray();
        return Enumerable.Range(0, count).Select(i => modes.Length == 0 ? ControlMode.Balanced : modes[Math.Min(i, modes.Length - 1)]).ToArray();
    }

    /// <summary>--control-preprocess once (for every unit) or once per --controlnet; "none" without it.</summary>
    static ControlPreprocessor[] Preprocessors(CommandLine cl, int count)
    {
        var names = cl.All("control-preprocess");
        if (names.Count > 1 && names.Count != count)
            throw new UsageException($"Give --control-preprocess once (for every ControlNet) or once per --controlnet ({count}); got {names.Count}.");
        var modules = names.Select(n =>
        {
            try { return ControlPreprocessor.Get(n); }
            catch (Exception e) when (e is NotSupportedException or ArgumentException) { throw new UsageException($"--control-preprocess {n}: {e.Message}."); }
        }).ToArray();
        return Enumerable.Range(0, count).Select(i => modules.Length == 0 ? ControlPreprocessor.None : modules[Math.Min(i, modules.Length - 1)]).ToArray();
    }
}
