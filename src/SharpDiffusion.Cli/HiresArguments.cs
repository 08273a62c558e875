using System.Globalization;
using SharpDiffusion.Imaging;
using SharpDiffusion.Imaging.ControlPreprocessors;
using SharpDiffusion.Adapters;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Schedulers;

namespace SharpDiffusion.Cli;

/// <summary>generate's hires-fix options (--hires-*), AUTOMATIC1111's second pass.</summary>
internal static class HiresArguments
{
    public static readonly OptionSpec[] Options =
    [
        new("hires-scale", OptionKind.Number, "hires fix (AUTOMATIC1111): draw at --width/--height, upscale by X, then img2img at the larger size (default: off)", "X"),
        new("hires-resize", OptionKind.Text, "hires fix to an explicit size instead of a scale (another aspect ratio: cover and crop at the centre, as A1111)", "WxH"),
        new("hires-upscaler", OptionKind.Text, "hires upscaler: Latent, Latent (antialiased), Latent (bicubic), Latent (bicubic antialiased), Latent (nearest), Latent (nearest-exact), None, Lanczos, Nearest (default: Latent)", "NAME"),
        new("hires-steps", OptionKind.Integer, "steps of the hires pass (diffusers' img2img count, cut by the strength) (default: as --steps)", "N"),
        new("hires-strength", OptionKind.Number, "denoising strength of the hires pass, 0..1 (default: 0.7)", "X"),
        new("hires-sampler", OptionKind.Text, "sampler of the hires pass (default: as --scheduler)", "NAME"),
        new("hires-prompt", OptionKind.Text, "prompt of the hires pass (default: the prompt)", "TEXT"),
        new("hires-negative-prompt", OptionKind.Text, "negative prompt of the hires pass (default: the negative prompt)", "TEXT"),
        new("hires-guidance", OptionKind.Number, "guidance scale of the hires pass (default: as --guidance)", "X"),
    ];

    /// <summary>The hires pass the options ask for; null without --hires-scale or --hires-resize.</summary>
    public static HiresFixOptions? Parse(CommandLine cl)
    {
        var resize = cl.Size("hires-resize");
        var hires = cl.Double("hires-scale") is null && resize == (0, 0) ? null : new HiresFixOptions
        {
            Scale = cl.Double("hires-scale") ?? 2,
            ResizeWidth = resize.Width,
            ResizeHeight = resize.Height,
            Upscaler = cl.String("hires-upscaler") ?? "Latent",
            Steps = cl.Int("hires-steps") ?? 0,
            Strength = cl.Double("hires-strength") ?? 0.7,
            Scheduler = cl.String("hires-sampler"),
            Prompt = cl.String("hires-prompt"),
            NegativePrompt = cl.String("hires-negative-prompt"),
            GuidanceScale = cl.Double("hires-guidance"),
        };
        foreach (var option in new[] { "hires-upscaler", "hires-steps", "hires-strength", "hires-sampler", "hires-prompt", "hires-negative-prompt", "hires-guidance" })
            if (hires is null && cl.Given(option))
                throw new UsageException($"--{option} belongs to the hires fix; give --hires-scale or --hires-resize too.");
        return hires;
    }
}
