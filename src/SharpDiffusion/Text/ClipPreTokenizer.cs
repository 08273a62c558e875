using System.Globalization;

namespace SharpDiffusion.Text;

/// <summary>
/// Splits cleaned text into the pieces CLIP byte-pair-encodes one by one. CLIP does it with
/// <code>re.findall(r"&lt;\|startoftext\|&gt;|&lt;\|endoftext\|&gt;|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+", text, IGNORECASE)</code>
/// (Python's <c>regex</c> module). That is written out here as a scanner instead of a .NET <c>Regex</c> because .NET
/// regexes classify UTF-16 units: a letter or digit outside the BMP (𝐀, 𝟏, CJK Extension B) would be two "Cs"
/// surrogates and fall into the punctuation branch. Alternatives are tried in order at each position, as in the
/// regex: "it's" -> "it", "'s"; "'sa" -> "'s", "a"; "1,000" -> "1", ",", "0", "0", "0"; "!'s" -> "!'", "s".
/// Whitespace matches nothing and is skipped.
/// </summary>
static class ClipPreTokenizer
{
    // The regex's literal alternatives, tried in its order.
    static readonly string[] Literals =
        ["<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"];

    public static List<string> Split(string text)
    {
        var pieces = new List<string>();
        int i = 0;
        while (i < text.Length)
        {
            int length = MatchAt(text, i);
            if (length > 0)
            {
                pieces.Add(text.Substring(i, length));
                i += length;
            }
            else
            {
                i += ClipTextCleanup.CodePointLength(text, i); // no alternative matches: findall moves on
            }
        }
        return pieces;
    }

    /// <summary>Length in UTF-16 units of the regex match starting at <paramref name="start"/>, 0 if none.</summary>
    static int MatchAt(string text, int start)
    {
        foreach (string literal in Literals)
            if (StartsWithIgnoreCase(text, start, literal))
                return literal.Length;

        var kind = Classify(text, start);
        if (kind == CharKind.Letter)
            return RunLength(text, start, CharKind.Letter); // [\p{L}]+
        if (kind == CharKind.Number)
            return ClipTextCleanup.CodePointLength(text, start); // [\p{N}]: digits one at a time
        if (kind == CharKind.Other)
            return RunLength(text, start, CharKind.Other); // [^\s\p{L}\p{N}]+
        return 0;
    }

    static int RunLength(string text, int start, CharKind kind)
    {
        int end = start;
        while (end < text.Length && Classify(text, end) == kind)
            end += ClipTextCleanup.CodePointLength(text, end);
        return end - start;
    }

    /// <summary>
    /// IGNORECASE compares by simple case equivalence: ASCII upper/lower, and for 's' also ſ (U+017F, long s),
    /// the only non-ASCII equivalent of a letter in these literals ("it'ſ" -> "it", "'ſ").
    /// </summary>
    static bool StartsWithIgnoreCase(string text, int start, string literal)
    {
        if (start + literal.Length > text.Length)
            return false;
        for (int k = 0; k < literal.Length; k++)
        {
            char c = text[start + k], expected = literal[k];
            bool same = c == expected || (c is >= 'A' and <= 'Z' && c + ('a' - 'A') == expected)
                || (expected == 's' && c == '\u017F');
            if (!same)
                return false;
        }
        return true;
    }

    /// <summary>Whitespace here means "matched by no alternative".</summary>
    enum CharKind { Whitespace, Letter, Number, Other }

    // U+0345 (combining ypogegrammeni) case-folds to ι, a letter. Under IGNORECASE the regex module then counts it
    // as in neither [\p{L}] nor [^\s\p{L}\p{N}], so no alternative matches and findall steps over it like a space:
    // "aͅb" -> "a", "b". (Observed with the regex package, checked over every code point; the only such character.)
    const int CombiningYpogegrammeni = 0x0345;

    static CharKind Classify(string text, int i)
    {
        int cp = ClipTextCleanup.CodePointAt(text, i);
        if (IsRegexWhitespace(cp) || cp == CombiningYpogegrammeni)
            return CharKind.Whitespace;
        return ClipTextCleanup.Category(cp) switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter => CharKind.Letter,
            UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber
                => CharKind.Number,
            _ => CharKind.Other,
        };
    }

    /// <summary>\s of Python's regex module on str patterns: Unicode White_Space. (Cleaned text has no whitespace
    /// but the single spaces between words; the full set keeps the scanner true to the regex on any input.)</summary>
    static bool IsRegexWhitespace(int cp) =>
        cp is >= 0x09 and <= 0x0D or 0x20 or 0x85 or 0xA0 or 0x1680 or >= 0x2000 and <= 0x200A
            or 0x2028 or 0x2029 or 0x202F or 0x205F or 0x3000;
}
