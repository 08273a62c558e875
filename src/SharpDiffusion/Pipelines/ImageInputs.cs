using SharpDiffusion.Imaging;
using static TorchSharp.torch;

namespace SharpDiffusion.Pipelines;

/// <summary>
/// The image and mask of an img2img or inpainting call at the size the model works at, as tensors: diffusers'
/// VaeImageProcessor (image: /255, 2x−1; mask: grayscale, binarised at 0.5) after AUTOMATIC1111's mask options
/// (invert, then blur). Holds the picture and the soft mask for pasting the original back.
/// </summary>
public sealed class ImageInputs : IDisposable
{
    /// <summary>[1, 3, H, W] float32 in [−1, 1].</summary>
    public required Tensor Image { get; init; }
    /// <summary>[1, 1, H, W] float32, 1 = repaint; null for img2img.</summary>
    public Tensor? Mask { get; init; }
    /// <summary>The image as given, resized to the working size.</summary>
    public required RgbImage Picture { get; init; }
    /// <summary>The blurred (not binarised) mask in [0, 1], H·W, for pasting back.</summary>
    public float[]? SoftMask { get; init; }

    public int Width => Picture.Width;
    public int Height => Picture.Height;

    /// <summary>The working size: the given width/height (one given: the other keeps the aspect ratio), else the image's
    /// own; rounded down to a multiple of <paramref name="multiple"/>.</summary>
    public static (int Width, int Height) WorkingSize(RgbImage image, int? width, int? height, int multiple)
    {
        double aspect = image.Width / (double)image.Height;
        int w = width ?? (height is int hh ? (int)Math.Round(hh * aspect) : image.Width);
        int h = height ?? (width is int ww ? (int)Math.Round(ww / aspect) : image.Height);
        (w, h) = (w - w % multiple, h - h % multiple);
        if (w < multiple || h < multiple)
            throw new ArgumentException($"The image is {image.Size}: too small for this model, which needs at least {multiple}x{multiple}; give a larger image or --width/--height.");
        return (w, h);
    }

    public static ImageInputs Prepare(GenerationOptions options, int width, int height, ICollection<string> warnings)
    {
        var source = options.Image ?? throw new ArgumentException("img2img and inpainting need an image.");
        if (source.Width != width || source.Height != height)
            warnings.Add($"The image ({source.Size}) was resized to {width}x{height}.");
        var picture = source.Resize(width, height);
        var image = ToTensor(picture);
        if (options.MaskImage is not { } maskImage)
            return new ImageInputs { Image = image, Picture = picture };

        if (maskImage.Width != source.Width || maskImage.Height != source.Height)
            warnings.Add($"The mask ({maskImage.Size}) is not the image's size ({source.Size}); it was resized to it.");
        var luma = maskImage.Resize(width, height).Luma();
        if (options.InvertMask)
            for (int i = 0; i < luma.Length; i++) luma[i] = (byte)(255 - luma[i]);
        luma = GaussianBlur.Apply(luma, width, height, options.MaskBlur);
        int repaint = luma.Count(v => v >= 128);
        if (repaint == 0)
            warnings.Add("The mask is all black (nothing to repaint): the image comes back as it was, only re-encoded. White marks what to repaint.");
        else if (repaint == luma.Length)
            warnings.Add("The mask is all white: the whole image is repainted, as img2img would.");
        var binary = luma.Select(v => v >= 128 ? 1f : 0f).ToArray();   // /255 ≥ 0.5
        return new ImageInputs
        {
            Image = image,
            Picture = picture,
            Mask = tensor(binary, [1, 1, height, width]),
            SoftMask = luma.Select(v => v / 255f).ToArray(),
        };
    }

    /// <summary>RGB bytes → [1, 3, H, W] float32: x/255, then 2x − 1.</summary>
    public static Tensor ToTensor(RgbImage picture)
    {
        using var scope = NewDisposeScope();
        var bytes = tensor(picture.Rgb, [picture.Height, picture.Width, 3]);
        var unit = bytes.to(ScalarType.Float32) / 255.0f;
        return (2.0f * unit - 1.0f).permute(2, 0, 1).unsqueeze(0).contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>AUTOMATIC1111's overlay: out = generated·m + original·(1 − m) with the soft mask m, on [B, H, W, 3] in [0, 1].</summary>
    public Tensor PasteOriginal(Tensor imageFloat)
    {
        if (SoftMask is null) return imageFloat.alias();
        using var scope = NewDisposeScope();
        var m = tensor(SoftMask, [1, Height, Width, 1]);
        var original = tensor(Picture.Rgb, [1, Height, Width, 3]).to(ScalarType.Float32) / 255.0f;
        return (imageFloat * m + original * (1 - m)).MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        Image.Dispose();
        Mask?.Dispose();
    }
}
