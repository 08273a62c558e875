using static TorchSharp.torch;

namespace SharpDiffusion.Pipelines;

/// <summary>Decoded images [B, H, W, 3] float32 in [0, 1] → bytes and <see cref="GeneratedImage"/>s.</summary>
public static class ImageTensors
{
    /// <summary>uint8 = round(image·255), round half to even, as diffusers' numpy_to_pil.</summary>
    public static Tensor ToUInt8(Tensor imageFloat)
    {
        using var scaled = imageFloat * 255.0f;
        using var rounded = scaled.round();
        return rounded.to(ScalarType.Byte);
    }

    /// <summary>One image per batch row, with the prompt and negative prompt that made it.</summary>
    public static List<GeneratedImage> ToImages(Tensor imageFloat, IReadOnlyList<string> prompts, IReadOnlyList<string> negatives)
    {
        using var bytes = ToUInt8(imageFloat);
        int h = (int)bytes.shape[1], w = (int)bytes.shape[2];
        var all = bytes.data<byte>().ToArray();
        int size = h * w * 3;
        return Enumerable.Range(0, (int)bytes.shape[0])
            .Select(b => new GeneratedImage(w, h, all[(b * size)..((b + 1) * size)], prompts[b], negatives[b]))
            .ToList();
    }
}
