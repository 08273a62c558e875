using System.Globalization;
using SharpDiffusion.Imaging;

namespace SharpDiffusion.Models.Upscalers;

/// <summary>
/// AUTOMATIC1111's Extras upscale (scripts/postprocessing_upscale.py, modules/upscaler.py): a picture through
/// "Upscaler 1" by a factor or to a size (cropped at the centre), optionally blended with "Upscaler 2"'s result.
/// Each upscaler is "None", "Lanczos", "Nearest" or an ESRGAN-family model of <see cref="UpscalerDirectory"/> by name.
/// </summary>
public sealed record ExtrasUpscale
{
    /// <summary>resize_mode: 0 = by <see cref="Factor"/>, 1 = to <see cref="Width"/>×<see cref="Height"/>.</summary>
    public int ResizeMode { get; init; }
    /// <summary>upscaling_resize (A1111's API default 2).</summary>
    public double Factor { get; init; } = 2;
    /// <summary>upscaling_resize_w / _h (defaults 512).</summary>
    public int Width { get; init; } = 512;
    public int Height { get; init; } = 512;
    /// <summary>upscaling_crop: with resize mode 1, the result is cut (or padded with black) to exactly the size.</summary>
    public bool Crop { get; init; } = true;
    /// <summary>upscaler_1, upscaler_2 ("None": no upscale, no blend).</summary>
    public string Upscaler1 { get; init; } = "None";
    public string Upscaler2 { get; init; } = "None";
    /// <summary>extras_upscaler_2_visibility: the blend weight of upscaler 2's result, 0..1.</summary>
    public double Upscaler2Visibility { get; init; }
    public string? UpscalerDirectory { get; init; }

    /// <summary>The built-in upscalers, in A1111's order.</summary>
    public static IReadOnlyList<string> BuiltIn { get; } = ["None", "Lanczos", "Nearest"];

    /// <summary>Refuses, in one line, an unknown upscaler or a size out of range (before any work is queued).</summary>
    public void Validate(int maxSide)
    {
        Resolve(Upscaler1, "upscaler_1");
        Resolve(Upscaler2, "upscaler_2");
        if (ResizeMode is not (0 or 1))
            throw new ArgumentException($"resize_mode {ResizeMode}: use 0 (scale by upscaling_resize) or 1 (to upscaling_resize_w x upscaling_resize_h).");
        if (ResizeMode == 0 && !(Factor > 0 && Factor <= 8))
            throw new ArgumentException($"upscaling_resize {Factor.ToString(CultureInfo.InvariantCulture)} is out of range: give a factor above 0 and at most 8.");
        if (ResizeMode == 1 && (Width < 1 || Height < 1 || Width > maxSide || Height > maxSide))
            throw new ArgumentException($"upscaling_resize_w/h {Width}x{Height} is out of range: give 1-{maxSide} pixels a side.");
        if (!(Upscaler2Visibility >= 0 && Upscaler2Visibility <= 1))
            throw new ArgumentException($"extras_upscaler_2_visibility {Upscaler2Visibility.ToString(CultureInfo.InvariantCulture)} must be between 0 and 1.");
    }

    /// <summary>A built-in's own name, or the model file of a name; an unknown name is a one-line error listing the known.</summary>
    (string Name, string? Path) Resolve(string name, string field)
    {
        if (BuiltIn.FirstOrDefault(b => string.Equals(b, name, StringComparison.OrdinalIgnoreCase)) is { } builtIn) return (builtIn, null);
        if (UpscalerModels.Find(UpscalerDirectory, name) is { } path)
            return (Path.GetFileNameWithoutExtension(path), path);
        var known = BuiltIn.Concat(UpscalerModels.List(UpscalerDirectory).Select(m => m.Name));
        throw new ArgumentException($"{field}: could not find upscaler named '{name}'; this server has: {string.Join(", ", known)}.");
    }

    /// <summary>The upscaled picture and the infotext A1111 stores as the PNG's "postprocessing" text ("" when
    /// upscaler 1 is None: the picture is returned as it is).</summary>
    public (RgbImage Image, string Info) Run(RgbImage picture, int maxSide) => Run([picture], maxSide)[0];

    /// <summary><see cref="Run(RgbImage, int)"/> for each picture, each model file read once.</summary>
    public IReadOnlyList<(RgbImage Image, string Info)> Run(IReadOnlyList<RgbImage> pictures, int maxSide, CancellationToken cancellation = default)
    {
        Validate(maxSide);
        var first = Resolve(Upscaler1, "upscaler_1");
        if (first.Name == "None") return pictures.Select(p => (p, "")).ToList();
        var second = Resolve(Upscaler2, "upscaler_2");
        bool blend = second.Name != "None" && Upscaler2Visibility > 0;
        using var model1 = first.Path is null ? null : Upscaler.Load(first.Path);
        using var model2 = blend && second.Path is not null ? Upscaler.Load(second.Path) : null;
        var results = new List<(RgbImage, string)>();
        foreach (var picture in pictures)
        {
            cancellation.ThrowIfCancellationRequested();
            var info = new List<(string Key, string Value)>();
            double factor = ResizeMode == 1 ? Math.Max(Width / (double)picture.Width, Height / (double)picture.Height) : Factor;
            info.Add(ResizeMode == 1 ? ("Postprocess upscale to", $"{Width}x{Height}") : ("Postprocess upscale by", PythonFloat(Factor)));
            int destWidth = (int)(Math.Floor(picture.Width * factor / 8) * 8), destHeight = (int)(Math.Floor(picture.Height * factor / 8) * 8);
            if (destWidth < 8 || destHeight < 8 || destWidth > maxSide || destHeight > maxSide)
                throw new ArgumentException($"Upscaling {picture.Size} by {PythonFloat(factor)} gives {destWidth}x{destHeight}; the result must be 8-{maxSide} pixels a side.");
            var result = Cropped(Upscale(picture, factor, destWidth, destHeight, first.Name, model1), info);
            info.Add(("Postprocess upscaler", first.Name));
            if (blend)
            {
                var other = Cropped(Upscale(picture, factor, destWidth, destHeight, second.Name, model2), null);
                result = Blend(result, other, Upscaler2Visibility);
                info.Add(("Postprocess upscaler 2", second.Name));
            }
            results.Add((result, string.Join(", ", info.Select(p => $"{p.Key}: {InfoText.Quote(p.Value)}"))));
        }
        return results;
    }

    /// <summary>modules/upscaler.py's Upscaler.upscale: the upscaler's own step (up to three times) until the picture
    /// covers the target, whose sides are (side·factor)//8·8, then Lanczos to exactly it.</summary>
    static RgbImage Upscale(RgbImage picture, double factor, int destWidth, int destHeight, string name, Upscaler? model)
    {
        var image = picture;
        for (int pass = 0; pass < 3; pass++)
        {
            var before = (image.Width, image.Height);
            int w = (int)(image.Width * factor), h = (int)(image.Height * factor);
            image = name switch
            {
                "Lanczos" => PictureResize.Lanczos(image, w, h),
                "Nearest" => PictureResize.Nearest(image, w, h),
                _ when model is not null => model.Upscale(image, model.Scale),   // one model pass, its own factor
                _ => image,
            };
            if ((image.Width, image.Height) == before || (image.Width >= destWidth && image.Height >= destHeight)) break;
        }
        return PictureResize.Lanczos(image, destWidth, destHeight);
    }

    /// <summary>Resize mode 1 with crop: the picture pasted at the centre of a black Width×Height canvas (PIL's paste at
    /// (W//2 − w//2, H//2 − h//2), cutting what falls outside).</summary>
    RgbImage Cropped(RgbImage image, List<(string, string)>? info)
    {
        if (ResizeMode != 1 || !Crop) return image;
        var rgb = new byte[Width * Height * 3];
        int left = Width / 2 - image.Width / 2, top = Height / 2 - image.Height / 2;
        for (int y = Math.Max(0, top); y < Math.Min(Height, top + image.Height); y++)
        {
            int x0 = Math.Max(0, left), x1 = Math.Min(Width, left + image.Width);
            Array.Copy(image.Rgb, ((y - top) * image.Width + (x0 - left)) * 3, rgb, (y * Width + x0) * 3, (x1 - x0) * 3);
        }
        info?.Add(("Postprocess crop to", $"{Width}x{Height}"));
        return new RgbImage(Width, Height, rgb);
    }

    /// <summary>PIL's Image.blend: a + α·(b − a) per channel, truncated toward zero.</summary>
    static RgbImage Blend(RgbImage a, RgbImage b, double alpha)
    {
        var rgb = new byte[a.Rgb.Length];
        float weight = (float)alpha;
        for (int i = 0; i < rgb.Length; i++)
            rgb[i] = (byte)Math.Clamp((int)(a.Rgb[i] + weight * (b.Rgb[i] - a.Rgb[i])), 0, 255);
        return new RgbImage(a.Width, a.Height, rgb);
    }

    /// <summary>A float as Python's str() writes it (2 → "2.0"), as A1111's infotext shows pydantic's floats.</summary>
    static string PythonFloat(double x) =>
        x == Math.Floor(x) && Math.Abs(x) < 1e16 ? x.ToString("0.0", CultureInfo.InvariantCulture) : x.ToString("R", CultureInfo.InvariantCulture);
}
