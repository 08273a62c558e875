using System.Globalization;
using System.Text;

namespace SharpDiffusion.Text;

/// <summary>
/// The text cleanup of transformers' slow <c>CLIPTokenizer</c> when ftfy is not installed (the path every golden
/// uses): <c>' '.join(BasicTokenizer(strip_accents=False, do_split_on_punc=False).tokenize(text))</c>.
/// <list type="number">
/// <item>drop NUL, U+FFFD and every character of Unicode category C* (controls, format characters such as
/// zero-width space and ZWJ, private use, unassigned, lone surrogates) except tab, LF and CR;</item>
/// <item>turn tab/LF/CR and space separators (Zs: NBSP, ideographic space, ...) into a space;</item>
/// <item>put spaces around CJK ideographs, so each becomes its own word;</item>
/// <item>NFC-normalise, split on whitespace, lower-case each word the way Python's <c>str.lower</c> does,
/// and join the words with single spaces.</item>
/// </list>
/// Python iterates code points, .NET strings are UTF-16, so every test here is made on whole code points:
/// an emoji is one "So" character, not two surrogates. Categories come from .NET's Unicode tables, which are newer
/// than Python 3.11's (Unicode 14): a character assigned since then is kept here but dropped there as unassigned.
/// Every Unicode 14 character was checked to clean and split exactly as in Python.
/// </summary>
static class ClipTextCleanup
{
    public static string Clean(string text)
    {
        var cleaned = new StringBuilder(text.Length + 8);
        for (int i = 0; i < text.Length; i += CodePointLength(text, i))
        {
            int cp = CodePointAt(text, i);
            if (IsDropped(cp))
                continue;
            if (IsWhitespace(cp))
                cleaned.Append(' ');
            else if (IsCjkIdeograph(cp))
                cleaned.Append(' ').Append(text, i, CodePointLength(text, i)).Append(' ');
            else
                cleaned.Append(text, i, CodePointLength(text, i));
        }

        string normalized = cleaned.ToString().Normalize(NormalizationForm.FormC);
        // Python's str.split(): what is left of whitespace here is the spaces above plus U+2028/U+2029 (Zl/Zp),
        // all of which char.IsWhiteSpace also splits on.
        var words = normalized.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        return string.Join(' ', words.Select(PythonLowerCase.Lower));
    }

    /// <summary>The code point at <paramref name="i"/>; a lone surrogate is returned as itself (category Cs).</summary>
    internal static int CodePointAt(string text, int i) =>
        CodePointLength(text, i) == 2 ? char.ConvertToUtf32(text[i], text[i + 1]) : text[i];

    internal static int CodePointLength(string text, int i) =>
        i + 1 < text.Length && char.IsSurrogatePair(text[i], text[i + 1]) ? 2 : 1;

    internal static UnicodeCategory Category(int cp) => CharUnicodeInfo.GetUnicodeCategory(cp);

    static bool IsDropped(int cp)
    {
        if (cp is 0 or 0xFFFD)
            return true;
        if (cp is '\t' or '\n' or '\r')
            return false; // category Cc, but BERT's cleanup treats them as whitespace, not as control characters
        return Category(cp) is UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.Surrogate
            or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned;
    }

    static bool IsWhitespace(int cp) =>
        cp is ' ' or '\t' or '\n' or '\r' || Category(cp) == UnicodeCategory.SpaceSeparator;

    /// <summary>The CJK Unified Ideographs blocks BERT singles out (not Hiragana, Katakana or Hangul).</summary>
    static bool IsCjkIdeograph(int cp) =>
        cp is >= 0x4E00 and <= 0x9FFF        // CJK Unified Ideographs
            or >= 0x3400 and <= 0x4DBF       // Extension A
            or >= 0x20000 and <= 0x2A6DF     // Extension B
            or >= 0x2A700 and <= 0x2B73F     // Extension C
            or >= 0x2B740 and <= 0x2B81F     // Extension D
            or >= 0x2B820 and <= 0x2CEAF     // Extension E
            or >= 0xF900 and <= 0xFAFF       // Compatibility Ideographs
            or >= 0x2F800 and <= 0x2FA1F;    // Compatibility Ideographs Supplement
}
