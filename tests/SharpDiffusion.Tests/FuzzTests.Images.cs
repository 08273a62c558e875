using SharpDiffusion.Imaging;
using SkiaSharp;

namespace SharpDiffusion.Tests;

/// <summary>The fuzzed images: a small PNG and JPEG with flipped bits, truncations, overwritten runs and a wrong declared size.</summary>
public partial class FuzzTests
{
    static void Images(Random rng, Tally tally, int casesPerFormat)
    {
        foreach (var format in new[] { SKEncodedImageFormat.Png, SKEncodedImageFormat.Jpeg })
        {
            byte[] seed = EncodeSeed(format);
            for (int i = 0; i < casesPerFormat; i++)
            {
                byte[] bytes = (byte[])seed.Clone();
                string what;
                int choice = rng.Next(4);
                if (choice == 2)
                {
                    // The declared size: PNG's IHDR width/height at 16..23, JPEG's SOF0 somewhere after the tables.
                    int offset = format == SKEncodedImageFormat.Png ? 16 + rng.Next(8) : FindSof(bytes) + 5 + rng.Next(4);
                    bytes[offset] = (byte)rng.Next(256);
                    what = $"size byte {offset} = {bytes[offset]}";
                }
                else
                    bytes = Damage(bytes, choice == 3 ? 2 : choice, maxRun: 64, rng, out what);
                string name = $"fuzz-{i}.{format.ToString().ToLowerInvariant()}";
                tally.Run(format.ToString(), what, name, () =>
                {
                    var image = ImageFile.Decode(bytes, name);
                    Assert.Equal(image.Width * image.Height * 3, image.Rgb.Length);
                });
            }
        }
    }

    static byte[] EncodeSeed(SKEncodedImageFormat format)
    {
        using var bitmap = new SKBitmap(24, 16);
        for (int y = 0; y < 16; y++)
            for (int x = 0; x < 24; x++)
                bitmap.SetPixel(x, y, new SKColor((byte)(x * 10), (byte)(y * 15), 128, 255));
        using var data = bitmap.Encode(format, 90);
        return data.ToArray();
    }

    static int FindSof(byte[] jpeg)
    {
        for (int i = 0; i < jpeg.Length - 1; i++)
            if (jpeg[i] == 0xFF && jpeg[i + 1] is 0xC0 or 0xC2)
                return i;
        return 0;
    }
}
