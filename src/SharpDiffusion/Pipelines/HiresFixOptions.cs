using System.Globalization;
using static TorchSharp.torch;

namespace SharpDiffusion.Pipelines;

/// <summary>
/// AUTOMATIC1111's hires fix (txt2img's second pass): the first pass at the given size, its result upscaled — the latents
/// by torch interpolation ("Latent …" upscalers) or the decoded picture ("Lanczos", "Nearest", "None") — then an img2img
/// pass at the larger size with <see cref="Strength"/> (A1111's denoising_strength) and a new generator with the same seed.
/// </summary>
public sealed record HiresFixOptions
{
    /// <summary>hr_scale: the second pass's size as a multiple of the first's (when no resize is given).</summary>
    public double Scale { get; init; } = 2;

    /// <summary>hr_resize_x / hr_resize_y: an explicit size (one of them 0: the other follows the aspect ratio; both: the
    /// picture is upscaled to cover it and cropped at the centre, as A1111).</summary>
    public int ResizeWidth { get; init; }
    public int ResizeHeight { get; init; }

    /// <summary>hr_upscaler: one of <see cref="Upscalers"/>.</summary>
    public string Upscaler { get; init; } = "Latent";

    /// <summary>hr_second_pass_steps: 0 = the first pass's step count.</summary>
    public int Steps { get; init; }

    /// <summary>denoising_strength of the second pass (A1111's default 0.7).</summary>
    public double Strength { get; init; } = 0.7;

    /// <summary>hr_sampler_name, hr_prompt, hr_negative_prompt, hr_cfg: null = the first pass's.</summary>
    public string? Scheduler { get; init; }
    public string? Prompt { get; init; }
    public string? NegativePrompt { get; init; }
    public double? GuidanceScale { get; init; }

    /// <summary>The latent upscalers: A1111's names → torch's interpolate mode and antialias flag.</summary>
    public static IReadOnlyDictionary<string, (InterpolationMode Mode, bool Antialias)> LatentUpscalers { get; } =
        new Dictionary<string, (InterpolationMode, bool)>(StringComparer.OrdinalIgnoreCase)
        {
            ["Latent"] = (InterpolationMode.Bilinear, false),
            ["Latent (antialiased)"] = (InterpolationMode.Bilinear, true),
            ["Latent (bicubic)"] = (InterpolationMode.Bicubic, false),
            ["Latent (bicubic antialiased)"] = (InterpolationMode.Bicubic, true),
            ["Latent (nearest)"] = (InterpolationMode.Nearest, false),
            ["Latent (nearest-exact)"] = (InterpolationMode.NearestExact, false),
        };

    /// <summary>The picture upscalers (A1111's "None" resizes with Lanczos).</summary>
    public static IReadOnlyList<string> PictureUpscalers { get; } = ["None", "Lanczos", "Nearest"];

    public static IEnumerable<string> Upscalers => LatentUpscalers.Keys.Concat(PictureUpscalers);

    public bool IsLatent => LatentUpscalers.ContainsKey(Upscaler);

    /// <summary>Where an ESRGAN-family model is found by its name (file stem, as AUTOMATIC1111 lists its ESRGAN folder:
    /// <see cref="Models.Upscalers.UpscalerModels"/>). Null: no folder.</summary>
    public string? UpscalerDirectory { get; init; }

    /// <summary>Whether <see cref="Upscaler"/> may be a model file's path (a library or CLI caller). A server sets false:
    /// its clients name the models of <see cref="UpscalerDirectory"/>, never a file of their choosing.</summary>
    public bool AllowModelPaths { get; init; } = true;

    /// <summary>The ESRGAN-family model file the upscaler names (<see cref="Models.Upscalers.Upscaler"/>): a model of
    /// <see cref="UpscalerDirectory"/> by name, else (when allowed) a path; null for the built-in upscalers.</summary>
    public string? ModelPath => Upscalers.Contains(Upscaler, StringComparer.OrdinalIgnoreCase) ? null
        : Models.Upscalers.UpscalerModels.Find(UpscalerDirectory, Upscaler)
          ?? (AllowModelPaths && Models.Upscalers.UpscalerModels.IsModelFileName(Upscaler) ? Upscaler : null);

    public bool IsModelFile => ModelPath is not null;

    /// <summary>The one rule for an upscaler name (the CLI's --hires-upscaler, the API's hr_upscaler): a built-in, a model
    /// of <see cref="UpscalerDirectory"/>, or (when allowed) an existing model file.</summary>
    public void CheckUpscaler()
    {
        if (ModelPath is { } path)
        {
            if (!File.Exists(path)) throw new ArgumentException($"Hires upscaler model file not found: {path}.");
            return;
        }
        if (Upscalers.Contains(Upscaler, StringComparer.OrdinalIgnoreCase)) return;
        var models = Models.Upscalers.UpscalerModels.List(UpscalerDirectory).Select(m => m.Name).ToList();
        string known = string.Join(", ", Upscalers.Concat(models));
        throw new ArgumentException(AllowModelPaths
            ? $"Unknown hires upscaler '{Upscaler}'; use one of: {known}, or an ESRGAN model file (.pth, .safetensors)."
            : $"Unknown hires upscaler '{Upscaler}'; use one of: {known}" +
              (UpscalerDirectory is null ? " (ESRGAN models are named from the server's --upscaler-dir, which is not set)." : "."));
    }

    /// <summary>Refuses, in one line, what the options cannot do.</summary>
    public void Validate()
    {
        var inv = CultureInfo.InvariantCulture;
        CheckUpscaler();
        if (ResizeWidth == 0 && ResizeHeight == 0 && (!double.IsFinite(Scale) || Scale < 1 || Scale > 8))
            throw new ArgumentException($"The hires scale must be between 1 and 8; got {Scale.ToString(inv)}.");
        if (ResizeWidth < 0 || ResizeHeight < 0 || ResizeWidth > GenerationOptions.MaxSide || ResizeHeight > GenerationOptions.MaxSide)
            throw new ArgumentException($"The hires resize must be 0 (by scale) or a size up to {GenerationOptions.MaxSide}; got {ResizeWidth}x{ResizeHeight}.");
        if (Steps < 0)
            throw new ArgumentException($"Hires steps must be 0 (the first pass's count) or more; got {Steps}.");
        if (!double.IsFinite(Strength) || Strength <= 0 || Strength > 1)
            throw new ArgumentException($"The hires denoising strength must be above 0 and at most 1; got {Strength.ToString(inv)}.");
        if (GuidanceScale is double g && !double.IsFinite(g))
            throw new ArgumentException("The hires guidance scale must be a finite number.");
    }

    /// <summary>A1111's calculate_target_resolution: the size the first pass's result is upscaled to, and the crop (in
    /// pixels, each side's total) that brings it to an explicit resize of another aspect ratio.</summary>
    public (int Width, int Height, int CropX, int CropY) Target(int width, int height)
    {
        if (ResizeWidth == 0 && ResizeHeight == 0)
            return ((int)(width * Scale), (int)(height * Scale), 0, 0);
        if (ResizeHeight == 0) return (ResizeWidth, ResizeWidth * height / width, 0, 0);
        if (ResizeWidth == 0) return (ResizeHeight * width / height, ResizeHeight, 0, 0);
        double source = width / (double)height, wanted = ResizeWidth / (double)ResizeHeight;
        var (x, y) = source < wanted ? (ResizeWidth, ResizeWidth * height / width) : (ResizeHeight * width / height, ResizeHeight);
        return (x, y, x - ResizeWidth, y - ResizeHeight);
    }
}
