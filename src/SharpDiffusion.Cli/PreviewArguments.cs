using SharpDiffusion.Imaging;
using SharpDiffusion.Pipelines;
using static TorchSharp.torch;

namespace SharpDiffusion.Cli;

/// <summary>generate's live preview: --preview FILE.png rewritten (atomically) every --preview-every steps with the
/// picture the model predicts at that step (x̂₀), decoded by --preview-vae (a TAESD, full resolution) or the cheap
/// latent map (<see cref="LatentPreview"/>, one pixel per latent).</summary>
internal static class PreviewArguments
{
    public static readonly OptionSpec[] Options =
    [
        new("preview", OptionKind.Text, "write the picture the model predicts so far to this PNG while it works, replaced atomically at each preview (default: none)", "FILE.png"),
        new("preview-every", OptionKind.Integer, "with --preview: a preview every N steps (default: 1)", "N"),
        new("preview-vae", OptionKind.Text, "with --preview: decode previews with this TAESD at full resolution (taesd_decoder.safetensors/.pth, taesdxl, taesd3, taef1, or a diffusers AutoencoderTiny folder) instead of the cheap latent map (default: the cheap map, 1/8 size)", "DIR|FILE"),
    ];

    /// <summary>What the options ask for; null without --preview. Checked before the model loads.</summary>
    public sealed record Settings(string Path, int Every, string? Vae);

    public static Settings? Parse(CommandLine cl)
    {
        string? path = cl.String("preview");
        if (path is null)
        {
            foreach (var option in new[] { "preview-every", "preview-vae" })
                if (cl.Given(option))
                    throw new UsageException($"--{option} belongs to the live preview; give --preview FILE.png too.");
            return null;
        }
        int every = cl.Int("preview-every") ?? 1;
        if (every < 1)
            throw new UsageException($"--preview-every must be at least 1; got {every}.");
        try { AtomicFiles.CheckWritable(path); }
        catch (Exception e) when (e is ArgumentException or IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"--preview: {e.Message}");
        }
        return new Settings(path, every, cl.String("preview-vae"));
    }

    /// <summary>The preview decoder for <paramref name="pipeline"/>: the TAESD (checked against the model's latents) or the cheap map.</summary>
    public static ILatentPreview Open(Settings settings, StableDiffusionPipeline pipeline, string device) =>
        settings.Vae is { } vae ? TaesdPreview.Load(vae, pipeline.LatentFormat, device) : LatentPreview.Fit(pipeline);

    /// <summary>The pipeline's onDenoised callback: every N-th step's x̂₀ (first image of the batch) → PNG at the path.</summary>
    public static Action<int, Tensor> Writer(Settings settings, ILatentPreview preview) => (step, x0) =>
    {
        if ((step + 1) % settings.Every != 0) return;
        var image = preview.ToImages(x0.narrow(0, 0, 1))[0];
        AtomicFiles.WriteAll([(settings.Path, PngFile.Encode(image.Width, image.Height, image.Rgb))]);
    };
}
