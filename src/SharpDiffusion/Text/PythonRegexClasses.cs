using System.Globalization;
using System.Text;

namespace SharpDiffusion.Text;

/// <summary>
/// The character classes of Python's <c>re</c> on <c>str</c> patterns, which are wider than .NET's:
/// <c>\s</c> is <c>str.isspace()</c> (.NET's white space plus the separators U+001C..U+001F), <c>\w</c> is
/// <c>str.isalnum()</c> or "_" (every letter and number category, not only decimal digits), <c>\d</c> is any Unicode
/// decimal digit. Classified per code point, so digits and letters outside the BMP count too.
/// </summary>
static class PythonRegexClasses
{
    /// <summary><c>\s</c>. Every Python white-space character is in the BMP, so one UTF-16 unit decides.</summary>
    public static bool IsSpace(char c) => char.IsWhiteSpace(c) || c is >= '\u001C' and <= '\u001F';

    /// <summary><c>\w</c>: letters (L*), numbers (N*: ², ½, Ⅻ as well as 0-9) and the underscore.</summary>
    public static bool IsWordChar(Rune r) => r.Value == '_' || Rune.GetUnicodeCategory(r) switch
    {
        UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
            or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter
            or UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber => true,
        _ => false,
    };

    /// <summary><c>\d</c>: a decimal digit of any script (Nd): "7", "٧" (Arabic-Indic), "７" (full width), "𝟕".</summary>
    public static bool IsDigit(Rune r) => Rune.GetUnicodeCategory(r) == UnicodeCategory.DecimalDigitNumber;

    /// <summary>The rune that ends just before <paramref name="index"/>, or null at the start of the text.</summary>
    public static Rune? RuneBefore(string text, int index)
    {
        if (index == 0)
            return null;
        Rune.DecodeLastFromUtf16(text.AsSpan(0, index), out var r, out _);
        return r;
    }

    /// <summary>The rune that starts at <paramref name="index"/>, or null at the end of the text.</summary>
    public static Rune? RuneAt(string text, int index)
    {
        if (index >= text.Length)
            return null;
        Rune.DecodeFromUtf16(text.AsSpan(index), out var r, out _);
        return r;
    }
}
