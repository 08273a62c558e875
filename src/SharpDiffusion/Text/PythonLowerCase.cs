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

    /// <summary>Unicode's Cased property, approximated by the letter categories that have case
    /// (Other_Lowercase/Other_Uppercase symbols such as ª or Ⓐ are not covered).</summary>
    static bool IsCased(Rune r) => Rune.GetUnicodeCategory(r) is UnicodeCategory.UppercaseLetter
        or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter;

    /// <summary>Unicode's Case_Ignorable property: marks, format characters, modifiers, and the
    /// word-internal punctuation of Word_Break MidLetter/MidNumLet/Single_Quote.</summary>
    static bool IsCaseIgnorable(Rune r) =>
        Rune.GetUnicodeCategory(r) is UnicodeCategory.NonSpacingMark or UnicodeCategory.EnclosingMark
            or UnicodeCategory.Format or UnicodeCategory.ModifierLetter or UnicodeCategory.ModifierSymbol
        || r.Value is '\'' or '.' or ':' or 0x00B7 or 0x0387 or 0x055F or 0x05F4 or 0x2018 or 0x2019 or 0x2024
            or 0x2027 or 0xFE13 or 0xFE52 or 0xFE55 or 0xFF07 or 0xFF0E or 0xFF1A;
}
