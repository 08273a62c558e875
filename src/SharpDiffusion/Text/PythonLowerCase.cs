using System.Globalization;
using System.Text;

namespace SharpDiffusion.Text;

/// <summary>
/// Python's <c>str.lower()</c>, which differs from .NET's <c>ToLowerInvariant</c> in the two places where Unicode's
/// full lower-case mapping is not one character to one character:
/// <list type="bullet">
/// <item>U+0130 (İ, capital I with dot) becomes "i" + U+0307 (combining dot above), two code points;</item>
/// <item>U+03A3 (Σ) becomes final sigma ς at the end of a word (Unicode's Final_Sigma condition), σ elsewhere.</item>
/// </list>
/// Everything else is the simple per-code-point mapping, done on runes so letters outside the BMP
/// (Deseret, Osage, ...) are lowered too.
/// </summary>
static class PythonLowerCase
{
    const int CapitalIWithDot = 0x0130;
    const int CapitalSigma = 0x03A3;
    const int SmallSigma = 0x03C3;
    const int SmallFinalSigma = 0x03C2;

    public static string Lower(string word)
    {
        var runes = word.EnumerateRunes().ToArray();
        var lowered = new StringBuilder(word.Length);
        for (int i = 0; i < runes.Length; i++)
        {
            int cp = runes[i].Value;
            if (cp == CapitalIWithDot)
                lowered.Append("i\u0307");
            else if (cp == CapitalSigma)
                lowered.Append((char)(IsFinalSigma(runes, i) ? SmallFinalSigma : SmallSigma));
            else
                lowered.Append(Rune.ToLowerInvariant(runes[i]).ToString());
        }
        return lowered.ToString();
    }

    /// <summary>
    /// Final_Sigma: a cased letter before it and none after it, skipping case-ignorable characters on both sides
    /// (CPython's <c>handle_capital_sigma</c>).
    /// </summary>
    static bool IsFinalSigma(Rune[] runes, int at)
    {
        int before = at - 1;
        while (before >= 0 && IsCaseIgnorable(runes[before]))
            before--;
        if (before < 0 || !IsCased(runes[before]))
            return false;

        int after = at + 1;
        while (after < runes.Length && IsCaseIgnorable(runes[after]))
            after++;
        return after == runes.Length || !IsCased(runes[after]);
    }

    /// <summary>Unicode's Cased property: the letters with case, plus the Other_Lowercase / Other_Uppercase
    /// characters that are not such letters (ª, modifier letters like ʰ, Roman numerals, circled letters, ...).</summary>
    static bool IsCased(Rune r) =>
        Rune.GetUnicodeCategory(r) is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter
            or UnicodeCategory.TitlecaseLetter
        || OtherCased.Any(range => r.Value >= range.First && r.Value <= range.Last);

    // Unicode 14 (Python 3.11's version); taken from the code points where str.lower's sigma rule sees a cased
    // character that is not Lu/Ll/Lt.
    static readonly (int First, int Last)[] OtherCased =
    [
        (0x00AA, 0x00AA), (0x00BA, 0x00BA), (0x02B0, 0x02B8), (0x02C0, 0x02C1), (0x02E0, 0x02E4), (0x0345, 0x0345),
        (0x037A, 0x037A), (0x1D2C, 0x1D6A), (0x1D78, 0x1D78), (0x1D9B, 0x1DBF), (0x2071, 0x2071), (0x207F, 0x207F),
        (0x2090, 0x209C), (0x2160, 0x217F), (0x24B6, 0x24E9), (0x2C7C, 0x2C7D), (0xA69C, 0xA69D), (0xA770, 0xA770),
        (0xA7F8, 0xA7F9), (0xAB5C, 0xAB5F), (0x10780, 0x10780), (0x10783, 0x10785), (0x10787, 0x107B0),
        (0x107B2, 0x107BA), (0x1F130, 0x1F149), (0x1F150, 0x1F169), (0x1F170, 0x1F189),
    ];

    /// <summary>Unicode's Case_Ignorable property: marks, format characters, modifiers, and the
    /// word-internal punctuation of Word_Break MidLetter/MidNumLet/Single_Quote.</summary>
    static bool IsCaseIgnorable(Rune r) =>
        Rune.GetUnicodeCategory(r) is UnicodeCategory.NonSpacingMark or UnicodeCategory.EnclosingMark
            or UnicodeCategory.Format or UnicodeCategory.ModifierLetter or UnicodeCategory.ModifierSymbol
        || r.Value is '\'' or '.' or ':' or 0x00B7 or 0x0387 or 0x055F or 0x05F4 or 0x2018 or 0x2019 or 0x2024
            or 0x2027 or 0xFE13 or 0xFE52 or 0xFE55 or 0xFF07 or 0xFF0E or 0xFF1A;
}
