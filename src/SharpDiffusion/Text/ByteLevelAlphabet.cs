using System.Text;

namespace SharpDiffusion.Text;

/// <summary>
/// GPT-2's reversible byte-to-character table (<c>bytes_to_unicode</c>), which CLIP's BPE vocabulary is written in.
/// BPE works on strings, so every UTF-8 byte needs a printable, non-whitespace character: bytes that already are
/// one (<c>!</c>..<c>~</c>, <c>¡</c>..<c>¬</c>, <c>®</c>..<c>ÿ</c>) stand for themselves, and the other 68 bytes
/// (controls, space, DEL, NBSP, soft hyphen) take U+0100, U+0101, ... in byte order.
/// </summary>
static class ByteLevelAlphabet
{
    static readonly char[] ByteToChar = BuildTable();

    static char[] BuildTable()
    {
        var table = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
            table[b] = StandsForItself(b) ? (char)b : (char)next++;
        return table;
    }

    static bool StandsForItself(int b) => b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;

    /// <summary>The 256 characters in byte order: the BPE's base alphabet.</summary>
    public static IReadOnlyList<char> Characters => ByteToChar;

    /// <summary>Writes the UTF-8 bytes of <paramref name="text"/> as one table character each.</summary>
    public static string Encode(string text)
    {
        byte[] utf8 = Encoding.UTF8.GetBytes(text);
        var chars = new char[utf8.Length];
        for (int i = 0; i < utf8.Length; i++)
            chars[i] = ByteToChar[utf8[i]];
        return new string(chars);
    }
}
