namespace SharpDiffusion.Imaging;

/// <summary>
/// A 5×7 pixel font for printable ASCII (our own table, drawn for this project), scaled by whole pixels: labels on
/// pictures without a font file or System.Drawing (SkiaSharp's NoDependencies build has no system fonts). Each glyph
/// sits in a 6×8 cell (one column and one row of space); characters outside ASCII 32–126 are drawn as '?'.
/// </summary>
public static class BitmapFont
{
    public const int GlyphWidth = 5, GlyphHeight = 7, Advance = 6;

    // One value per character from ' ' (32) to '~' (126): 35 bits, row by row from the top, each row's 5 pixels from
    // the left, most significant bit first.
    static readonly ulong[] Glyphs =
    [
        0x000000000, 0x108421004, 0x294A00000, 0x295F57D4A, 0x11F4717C4, 0x632222263,
        0x32544564D, 0x108800000, 0x088842082, 0x208210888, 0x009575480, 0x0084F9080,
        0x000003088, 0x0000F8000, 0x00000018C, 0x002222200, 0x3A33AE62E, 0x11842108E,
        0x3A211111F, 0x7C441062E, 0x08CA97C42, 0x7E1E0862E, 0x1910F462E, 0x7C2222108,
        0x3A317462E, 0x3A317844C, 0x018C03180, 0x018C03088, 0x088882082, 0x001F07C00,
        0x208208888, 0x3A2111004, 0x3A216D6AE, 0x3A31FC631, 0x7A31F463E, 0x3A308422E,
        0x72518C65C, 0x7E10F421F, 0x7E10F4210, 0x3A30BC62F, 0x4631FC631, 0x38842108E,
        0x1C4210A4C, 0x4654C5251, 0x42108421F, 0x4775AC631, 0x4639ACE31, 0x3A318C62E,
        0x7A31F4210, 0x3A318D64D, 0x7A31F5251, 0x3E107043E, 0x7C8421084, 0x46318C62E,
        0x46318C544, 0x4631AD6AA, 0x462A22A31, 0x462A21084, 0x7C222221F, 0x39084210E,
        0x020820820, 0x38421084E, 0x115100000, 0x00000001F, 0x208200000, 0x000E0BE2F,
        0x4216CC63E, 0x000E8422E, 0x042D9C62F, 0x000E8FE0E, 0x1928E2108, 0x01F18BC2E,
        0x4216CC631, 0x100C2108E, 0x080610A4C, 0x4212A6292, 0x30842108E, 0x001AAD631,
        0x0016CC631, 0x000E8C62E, 0x001E8FA10, 0x000D9BC21, 0x0016CC210, 0x000E8383E,
        0x211C42126, 0x00118C66D, 0x00118C544, 0x00118D6AA, 0x001151151, 0x00118BC2E,
        0x001F1111F, 0x088441082, 0x108421084, 0x208411088, 0x0008A8800,
    ];

    /// <summary>The drawn width of one line at <paramref name="scale"/> (no trailing space).</summary>
    public static int Width(string text, int scale) => text.Length == 0 ? 0 : (text.Length * Advance - 1) * scale;

    /// <summary>The drawn height of one line at <paramref name="scale"/>.</summary>
    public static int Height(string text, int scale) => text.Length == 0 ? 0 : GlyphHeight * scale;

    static ulong Glyph(char c) => Glyphs[c is >= ' ' and <= '~' ? c - ' ' : '?' - ' '];

    /// <summary>Draws one line with its top-left at (x, y) into an RGB picture; what falls outside is clipped.</summary>
    public static void Draw(byte[] rgb, int width, int height, int x, int y, string text, int scale, (byte R, byte G, byte B) color)
    {
        for (int i = 0; i < text.Length; i++)
        {
            ulong bits = Glyph(text[i]);
            for (int row = 0; row < GlyphHeight; row++)
            for (int col = 0; col < GlyphWidth; col++)
            {
                if ((bits >> (GlyphWidth * GlyphHeight - 1 - (row * GlyphWidth + col)) & 1) == 0) continue;
                int left = x + (i * Advance + col) * scale, top = y + row * scale;
                for (int dy = 0; dy < scale; dy++)
                for (int dx = 0; dx < scale; dx++)
                {
                    int px = left + dx, py = top + dy;
                    if (px < 0 || py < 0 || px >= width || py >= height) continue;
                    int at = (py * width + px) * 3;
                    (rgb[at], rgb[at + 1], rgb[at + 2]) = color;
                }
            }
        }
    }
}
