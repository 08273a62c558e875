using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;
using SkiaSharp;

namespace SharpDiffusion.Imaging;

/// <summary>
/// PNG encoding of RGB images with text metadata, written atomically: a temporary file in the target folder,
/// then a rename, so a reader never sees half an image.
/// </summary>
public static class PngFile
{
    static readonly byte[] Signature = [137, 80, 78, 71, 13, 10, 26, 10];

    /// <summary>PNG bytes of an RGB image (3 bytes per pixel, row-major) with optional text chunks.</summary>
    public static byte[] Encode(int width, int height, ReadOnlySpan<byte> rgb, IReadOnlyDictionary<string, string>? text = null)
    {
        if (rgb.Length != width * height * 3)
            throw new ArgumentException($"Expected {width * height * 3} RGB bytes for {width}x{height}, got {rgb.Length}");
        var rgba = new byte[width * height * 4];
        for (int p = 0, q = 0; p < rgb.Length; p += 3, q += 4)
        {
            rgba[q] = rgb[p];
            rgba[q + 1] = rgb[p + 1];
            rgba[q + 2] = rgb[p + 2];
            rgba[q + 3] = 255;
        }
        var info = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        using var image = SKImage.FromPixelCopy(info, rgba);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        var png = data.ToArray();
        return text is null || text.Count == 0 ? png : InsertText(png, text);
    }

    /// <summary>Writes the PNG atomically (temp file + rename).</summary>
    public static void Save(string path, int width, int height, ReadOnlySpan<byte> rgb, IReadOnlyDictionary<string, string>? text = null) =>
        AtomicFiles.WriteAll([(path, Encode(width, height, rgb, text))]);

    /// <summary>Decodes a PNG/JPEG/WebP to RGB bytes (through <see cref="ImageFile.Load"/>: alpha dropped unpremultiplied).</summary>
    public static (int Width, int Height, byte[] Rgb) Decode(string path)
    {
        var image = ImageFile.Load(path);
        return (image.Width, image.Height, image.Rgb);
    }

    /// <summary>Reads the tEXt/iTXt chunks of a PNG (keyword → text).</summary>
    public static Dictionary<string, string> ReadText(byte[] png)
    {
        var result = new Dictionary<string, string>();
        int pos = Signature.Length;
        while (pos + 8 <= png.Length)
        {
            int length = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(pos));
            string type = Encoding.ASCII.GetString(png, pos + 4, 4);
            var body = png.AsSpan(pos + 8, length);
            int zero = body.IndexOf((byte)0);
            if (type == "tEXt" && zero > 0)
                result[Encoding.Latin1.GetString(body[..zero])] = Encoding.Latin1.GetString(body[(zero + 1)..]);
            else if (type == "iTXt" && zero > 0)
            {
                // keyword \0 compression-flag compression-method language \0 translated-keyword \0 text
                var rest = body[(zero + 3)..];
                int langEnd = rest.IndexOf((byte)0);
                var afterLang = rest[(langEnd + 1)..];
                int keyEnd = afterLang.IndexOf((byte)0);
                result[Encoding.Latin1.GetString(body[..zero])] = Encoding.UTF8.GetString(afterLang[(keyEnd + 1)..]);
            }
            pos += 12 + length;
        }
        return result;
    }

    // Text chunks go right after IHDR (the first chunk: 8 + 4 + 4 + 13 + 4 bytes in).
    static byte[] InsertText(byte[] png, IReadOnlyDictionary<string, string> text)
    {
        int afterHeader = Signature.Length + 12 + BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(Signature.Length));
        using var output = new MemoryStream();
        output.Write(png, 0, afterHeader);
        foreach (var (key, value) in text)
            WriteTextChunk(output, key, value);
        output.Write(png, afterHeader, png.Length - afterHeader);
        return output.ToArray();
    }

    // tEXt when the text is Latin-1, else iTXt in UTF-8 (as PIL's PngInfo.add_text, which AUTOMATIC1111 uses).
    static void WriteTextChunk(Stream output, string key, string value)
    {
        value = value.Replace("\0", ""); // PNG text may not hold NUL (it ends the keyword); a prompt may
        bool latin1 = value.All(c => c <= 0xFF);
        var body = new MemoryStream();
        body.Write(Encoding.Latin1.GetBytes(key));
        body.WriteByte(0);
        if (latin1)
            body.Write(Encoding.Latin1.GetBytes(value));
        else
        {
            body.Write([0, 0]); // not compressed
            body.WriteByte(0);  // empty language tag
            body.WriteByte(0);  // empty translated keyword
            body.Write(Encoding.UTF8.GetBytes(value));
        }
        WriteChunk(output, latin1 ? "tEXt" : "iTXt", body.ToArray());
    }

    static void WriteChunk(Stream output, string type, byte[] data)
    {
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(length, data.Length);
        output.Write(length);
        var typeAndData = new byte[4 + data.Length];
        Encoding.ASCII.GetBytes(type).CopyTo(typeAndData, 0);
        data.CopyTo(typeAndData, 4);
        output.Write(typeAndData);
        Span<byte> crc = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(crc, Crc32.HashToUInt32(typeAndData));
        output.Write(crc);
    }
}
