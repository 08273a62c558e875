namespace SharpDiffusion.Imaging.ControlPreprocessors;

/// <summary>
/// A ControlNet preprocessor that needs no model, as sd-webui-controlnet defines it: its module name (the API's
/// <c>controlnet_module</c>), UI label, sliders and what it does to a picture. The control map comes back as an RGB
/// picture (three equal channels for the edge and threshold maps, as the extension's HWC3).
/// <list type="bullet">
/// <item><c>none</c>: the picture as it is (a pose, depth, normal or line map made elsewhere).</item>
/// <item><c>canny</c>: <see cref="CannyDetector"/> on the RGB picture after <see cref="ResizeImageWithPad"/>; thresholds
/// low 100, high 200 (1-255, truncated to integers as the extension's <c>int(slider)</c>).</item>
/// <item><c>invert</c> ("invert (from white bg &amp; black line)"): 255 − v, no resizing.</item>
/// <item><c>threshold</c>: 255 where the smallest of R, G, B exceeds the threshold (default 127, 0-255), else 0, after
/// <see cref="ResizeImageWithPad"/>.</item>
/// </list>
/// Model-based annotators (OpenPose, MiDaS, HED, ...) are refused by <see cref="Get"/> with a one-line reason.
/// </summary>
public sealed class ControlPreprocessor
{
    public string Name { get; }
    /// <summary>The name the extension's UI shows (and also accepts as the module).</summary>
    public string Label { get; }
    /// <summary>The sliders the extension shows, in its order (resolution, threshold a, threshold b); null = hidden.</summary>
    public PreprocessorParameter? Resolution { get; }
    public PreprocessorParameter? ThresholdA { get; }
    public PreprocessorParameter? ThresholdB { get; }

    /// <summary>(picture, resolution, threshold a, threshold b) → map; the values are already bound-checked.</summary>
    readonly Func<RgbImage, int, double, double, RgbImage> _run;

    ControlPreprocessor(string name, string label, PreprocessorParameter? resolution, PreprocessorParameter? a, PreprocessorParameter? b,
        Func<RgbImage, int, double, double, RgbImage> run) =>
        (Name, Label, Resolution, ThresholdA, ThresholdB, _run) = (name, label, resolution, a, b, run);

    public static readonly ControlPreprocessor None = new("none", "none", PreprocessorParameter.Resolution, null, null,
        (image, _, _, _) => image);

    public static readonly ControlPreprocessor Canny = new("canny", "canny", PreprocessorParameter.Resolution,
        new("Low Threshold", 1, 255, 1, 100), new("High Threshold", 1, 255, 1, 200),
        (image, resolution, low, high) => ResizeImageWithPad.Apply(image, resolution,
            padded => Grey(padded.Width, padded.Height, CannyDetector.Detect(padded, (int)low, (int)high))));

    public static readonly ControlPreprocessor Invert = new("invert", "invert (from white bg & black line)", null, null, null,
        (image, _, _, _) => new RgbImage(image.Width, image.Height, image.Rgb.Select(v => (byte)(255 - v)).ToArray()));

    public static readonly ControlPreprocessor Threshold = new("threshold", "threshold", PreprocessorParameter.Resolution,
        new("Binarization Threshold", 0, 255, 0.01, 127), null,
        (image, resolution, threshold, _) => ResizeImageWithPad.Apply(image, resolution, padded => Binarize(padded, threshold)));

    /// <summary>Every preprocessor built in, in the extension's module_list order ("none" first, then by its sorting
    /// priority: canny 100, invert 20, threshold 0).</summary>
    public static IReadOnlyList<ControlPreprocessor> All { get; } = [None, Canny, Invert, Threshold];

    /// <summary>The preprocessor of that module name or label.</summary>
    /// <exception cref="NotSupportedException">a model-based annotator (or a model-free one not built here), in one line.</exception>
    /// <exception cref="ArgumentException">no preprocessor of that name.</exception>
    public static ControlPreprocessor Get(string module) =>
        All.FirstOrDefault(p => p.Label == module) ?? All.FirstOrDefault(p => p.Name == module)
        ?? throw (AnnotatorModels.Refusal(module) is string reason
            ? new NotSupportedException(reason)
            : new ArgumentException($"preprocessor '{module}' is unknown; use one of {string.Join(", ", All.Select(p => p.Name))}, or 'none' for a map made elsewhere"));

    /// <summary>The control map of <paramref name="image"/>. Values outside a slider's range (-1: not given) mean its
    /// default, as the extension's API treats them.</summary>
    public RgbImage Run(RgbImage image, double resolution = -1, double thresholdA = -1, double thresholdB = -1) =>
        _run(image, (int)(Resolution?.OrDefault(resolution) ?? 0), ThresholdA?.OrDefault(thresholdA) ?? 0, ThresholdB?.OrDefault(thresholdB) ?? 0);

    /// <summary>The control map at the picture's own size: the resolution is its short side (no resampling, even below
    /// the slider's 64), the thresholds as in <see cref="Run"/>.</summary>
    public RgbImage RunAtOwnSize(RgbImage image, double thresholdA = -1, double thresholdB = -1) =>
        _run(image, Math.Min(image.Width, image.Height), ThresholdA?.OrDefault(thresholdA) ?? 0, ThresholdB?.OrDefault(thresholdB) ?? 0);

    /// <summary>A one-channel map as RGB with three equal channels (cv2.COLOR_GRAY2RGB).</summary>
    static RgbImage Grey(int width, int height, byte[] plane)
    {
        var rgb = new byte[plane.Length * 3];
        for (int p = 0; p < plane.Length; p++)
            rgb[3 * p] = rgb[3 * p + 1] = rgb[3 * p + 2] = plane[p];
        return new RgbImage(width, height, rgb);
    }

    /// <summary>255 where min(R, G, B) &gt; <paramref name="threshold"/>, else 0, on all three channels.</summary>
    static RgbImage Binarize(RgbImage image, double threshold)
    {
        var plane = new byte[image.Width * image.Height];
        for (int p = 0; p < plane.Length; p++)
            plane[p] = Math.Min(image.Rgb[3 * p], Math.Min(image.Rgb[3 * p + 1], image.Rgb[3 * p + 2])) > threshold ? (byte)255 : (byte)0;
        return Grey(image.Width, image.Height, plane);
    }
}
