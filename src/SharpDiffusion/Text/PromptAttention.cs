using System.Globalization;
using System.Text;

namespace SharpDiffusion.Text;

/// <summary>
/// AUTOMATIC1111's prompt emphasis syntax (<c>parse_prompt_attention</c> in <c>modules/prompt_parser.py</c>): splits a
/// prompt into runs of text with a weight.
/// <list type="bullet">
/// <item><c>(a)</c> multiplies the weight of a by 1.1, <c>[a]</c> by 1/1.1, <c>(a:1.3)</c> by 1.3; nesting
/// multiplies, innermost bracket first: <c>((a))</c> = 1.1 * 1.1 = 1.2100000000000002.</item>
/// <item>A weight is <c>:</c>, an optional sign, digits and dots, then <c>)</c> at once: <c>(a :1.2)</c> is ("a ", 1.2);
/// <c>(a: 1.2)</c> and <c>(a:1e2)</c> are not weights, so the colon and number stay text under a plain ×1.1.</item>
/// <item><c>\( \) \[ \] \\</c> are the literal characters; any other backslash is dropped.</item>
/// <item>An unmatched <c>)</c> or <c>]</c> is text; brackets still open at the end are closed there, first all round
/// ones (in opening order), then all square ones.</item>
/// <item><c>BREAK</c> as a separate upper-case word (spaces around it dropped) becomes the piece ("BREAK", -1).</item>
/// <item>Neighbouring pieces with equal weight are merged; a prompt that leaves no piece ("", "()") is [("", 1.0)].</item>
/// </list>
/// Weights are doubles multiplied in A1111's order, so they equal its Python floats bit for bit.
/// </summary>
public static class PromptAttention
{
    /// <summary>The keyword that ends a 75-token chunk early (see <see cref="PromptPiece.IsBreak"/>).</summary>
    public const string Break = "BREAK";
    public const double RoundBracketMultiplier = 1.1;
    public const double SquareBracketMultiplier = 1 / 1.1;

    /// <summary>The weighted pieces of <paramref name="prompt"/>, never empty.</summary>
    /// <exception cref="ArgumentException">
    /// A weight with two decimal points or none of its digits, such as <c>(a:1.2.3)</c>, where A1111's
    /// <c>float()</c> raises ValueError.
    /// </exception>
    public static IReadOnlyList<PromptPiece> Parse(string prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var pieces = new List<PromptPiece>();
        var roundBrackets = new List<int>(); // for each open "(": the index of the first piece inside it
        var squareBrackets = new List<int>();

        for (int at = 0; at < prompt.Length;)
        {
            var (kind, text) = ReadToken(prompt, at);
            if (kind == TokenKind.Escape)
                pieces.Add(new(text[1..], 1.0));
            else if (kind == TokenKind.OpenRound)
                roundBrackets.Add(pieces.Count);
            else if (kind == TokenKind.OpenSquare)
                squareBrackets.Add(pieces.Count);
            else if (kind == TokenKind.WeightedClose && roundBrackets.Count > 0)
                MultiplyFrom(pieces, Pop(roundBrackets), ParseWeight(text[1..^1], at));
            else if (kind == TokenKind.CloseRound && roundBrackets.Count > 0)
                MultiplyFrom(pieces, Pop(roundBrackets), RoundBracketMultiplier);
            else if (kind == TokenKind.CloseSquare && squareBrackets.Count > 0)
                MultiplyFrom(pieces, Pop(squareBrackets), SquareBracketMultiplier);
            else
                AddText(pieces, text);
            at += text.Length;
        }

        foreach (int start in roundBrackets)
            MultiplyFrom(pieces, start, RoundBracketMultiplier);
        foreach (int start in squareBrackets)
            MultiplyFrom(pieces, start, SquareBracketMultiplier);

        if (pieces.Count == 0)
            pieces.Add(new("", 1.0));
        MergeEqualWeights(pieces);
        return pieces;
    }

    enum TokenKind { Escape, OpenRound, OpenSquare, WeightedClose, CloseRound, CloseSquare, Text }

    /// <summary>
    /// The token at <paramref name="at"/>, trying A1111's regex alternatives in its order:
    /// <c>\( \) \[ \] \\</c>, a lone <c>\</c>, <c>(</c>, <c>[</c>, <c>:weight)</c>, <c>)</c>, <c>]</c>,
    /// a run of characters other than <c>\ ( ) [ ] :</c>, and a lone <c>:</c>.
    /// </summary>
    static (TokenKind Kind, string Text) ReadToken(string prompt, int at)
    {
        char c = prompt[at];
        if (c == '\\')
        {
            bool escapes = at + 1 < prompt.Length && prompt[at + 1] is '(' or ')' or '[' or ']' or '\\';
            return (TokenKind.Escape, prompt.Substring(at, escapes ? 2 : 1));
        }
        if (c == '(')
            return (TokenKind.OpenRound, "(");
        if (c == '[')
            return (TokenKind.OpenSquare, "[");
        if (c == ':')
        {
            int length = WeightedCloseLength(prompt, at);
            return length > 0 ? (TokenKind.WeightedClose, prompt.Substring(at, length)) : (TokenKind.Text, ":");
        }
        if (c == ')')
            return (TokenKind.CloseRound, ")");
        if (c == ']')
            return (TokenKind.CloseSquare, "]");

        int end = at;
        while (end < prompt.Length && prompt[end] is not ('\\' or '(' or ')' or '[' or ']' or ':'))
            end++;
        return (TokenKind.Text, prompt[at..end]);
    }

    /// <summary>Length of <c>:([+-]?[.\d]+)\)</c> at <paramref name="colon"/> (Python's Unicode <c>\d</c>), 0 if it does not match.</summary>
    static int WeightedCloseLength(string prompt, int colon)
    {
        int at = colon + 1;
        if (at < prompt.Length && prompt[at] is '+' or '-')
            at++;
        int numberStart = at;
        while (PythonRegexClasses.RuneAt(prompt, at) is { } r && (r.Value == '.' || PythonRegexClasses.IsDigit(r)))
            at += r.Utf16SequenceLength;
        bool matches = at > numberStart && at < prompt.Length && prompt[at] == ')';
        return matches ? at + 1 - colon : 0;
    }

    /// <summary>
    /// Python's <c>float()</c> of a matched weight: digits of any script, at most one decimal point, at least one
    /// digit (".5" and "1." are numbers, "1.2.3" and "." are not).
    /// </summary>
    static double ParseWeight(string weight, int position)
    {
        var ascii = new StringBuilder(weight.Length);
        int digits = 0, points = 0;
        foreach (Rune r in weight.EnumerateRunes())
        {
            if (r.Value is '+' or '-' or '.')
                ascii.Append((char)r.Value);
            else
                ascii.Append((char)('0' + (int)Rune.GetNumericValue(r)));
            if (r.Value == '.')
                points++;
            else if (r.Value is not ('+' or '-'))
                digits++;
        }
        if (digits == 0 || points > 1)
            throw new ArgumentException(
                $"Prompt weight \"{weight}\" at position {position} is not a number (AUTOMATIC1111 rejects it too): " +
                @"write one number with at most one decimal point, like (text:1.2), or escape the bracket as \) to keep the text.");
        return double.Parse(ascii.ToString(), NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint,
            CultureInfo.InvariantCulture);
    }

    /// <summary>Text, split at each BREAK into text, ("BREAK", -1), text; every text piece weighs 1.0.</summary>
    static void AddText(List<PromptPiece> pieces, string text)
    {
        var parts = SplitAtBreaks(text);
        for (int i = 0; i < parts.Count; i++)
        {
            if (i > 0)
                pieces.Add(new(Break, -1));
            pieces.Add(new(parts[i], 1.0));
        }
    }

    /// <summary>
    /// Python's <c>re.split(r"\s*\bBREAK\b\s*", text)</c>: BREAK with no letter, digit or "_" touching it, together
    /// with the white space on both sides. "a BREAK b" -> "a", "b"; "aBREAKb" and "a break b" are not split.
    /// </summary>
    static List<string> SplitAtBreaks(string text)
    {
        var parts = new List<string>();
        int partStart = 0;
        for (int at = text.IndexOf(Break, StringComparison.Ordinal); at >= 0;
             at = text.IndexOf(Break, at + 1, StringComparison.Ordinal))
        {
            int after = at + Break.Length;
            if (IsWordChar(PythonRegexClasses.RuneBefore(text, at)) || IsWordChar(PythonRegexClasses.RuneAt(text, after)))
                continue;
            int matchStart = at;
            while (matchStart > partStart && PythonRegexClasses.IsSpace(text[matchStart - 1]))
                matchStart--;
            int matchEnd = after;
            while (matchEnd < text.Length && PythonRegexClasses.IsSpace(text[matchEnd]))
                matchEnd++;
            parts.Add(text[partStart..matchStart]);
            partStart = matchEnd;
        }
        parts.Add(text[partStart..]);
        return parts;
    }

    static bool IsWordChar(Rune? r) => r is { } rune && PythonRegexClasses.IsWordChar(rune);

    static int Pop(List<int> stack)
    {
        int top = stack[^1];
        stack.RemoveAt(stack.Count - 1);
        return top;
    }

    /// <summary>Every piece from <paramref name="start"/> on (those inside the bracket just closed) times the multiplier.</summary>
    static void MultiplyFrom(List<PromptPiece> pieces, int start, double multiplier)
    {
        for (int p = start; p < pieces.Count; p++)
            pieces[p] = pieces[p] with { Weight = pieces[p].Weight * multiplier };
    }

    static void MergeEqualWeights(List<PromptPiece> pieces)
    {
        int i = 0;
        while (i + 1 < pieces.Count)
        {
            if (pieces[i].Weight == pieces[i + 1].Weight)
            {
                pieces[i] = pieces[i] with { Text = pieces[i].Text + pieces[i + 1].Text };
                pieces.RemoveAt(i + 1);
            }
            else
            {
                i++;
            }
        }
    }
}
