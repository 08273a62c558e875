using System.Text.Json;
using SharpDiffusion.Text;

namespace SharpDiffusion.Tests.Text;

/// <summary>
/// golden/a1111/parse_prompt_attention.json: A1111's <c>parse_prompt_attention</c> run on 71 prompts. Weights are
/// Python floats and must match bit for bit (they are products in A1111's order).
/// </summary>
public class PromptAttentionTests
{
    /// <summary>One golden case: the pieces A1111 returned, or null where it raised (<see cref="Error"/>).</summary>
    public sealed record ParseCase(string Prompt, PromptPiece[]? Parsed, string? Error);

    static readonly Lazy<ParseCase[]> LazyCases = new(ReadCases);

    static ParseCase[] ReadCases()
    {
        using var json = JsonDocument.Parse(File.ReadAllText(Golden.Path("a1111", "parse_prompt_attention.json")));
        return json.RootElement.GetProperty("cases").EnumerateArray().Select(c => new ParseCase(
            c.GetProperty("prompt").GetString()!,
            c.TryGetProperty("parsed", out var parsed)
                ? parsed.EnumerateArray().Select(p => new PromptPiece(p[0].GetString()!, p[1].GetDouble())).ToArray()
                : null,
            c.TryGetProperty("error", out var error) ? error.GetString() : null)).ToArray();
    }

    static TheoryData<int, string> CasesWhere(Func<ParseCase, bool> keep)
    {
        var data = new TheoryData<int, string>();
        for (int i = 0; i < LazyCases.Value.Length; i++)
            if (keep(LazyCases.Value[i]))
                data.Add(i, LazyCases.Value[i].Prompt);
        return data;
    }

    /// <summary>(index, prompt): the prompt names the case in the test list; the expectation is looked up by index.</summary>
    public static TheoryData<int, string> ParsedCases() => CasesWhere(c => c.Parsed != null);
    public static TheoryData<int, string> ErrorCases() => CasesWhere(c => c.Error != null);

    [Fact]
    public void GoldenFileHas71CasesOneOfThemAnError()
    {
        Assert.Equal(71, LazyCases.Value.Length);
        Assert.Single(LazyCases.Value, c => c.Error != null);
        Assert.All(LazyCases.Value, c => Assert.True((c.Parsed == null) != (c.Error == null), c.Prompt));
    }

    [Theory]
    [MemberData(nameof(ParsedCases))]
    public void ParsesLikeA1111(int index, string prompt)
    {
        var expected = LazyCases.Value[index].Parsed!;
        var actual = PromptAttention.Parse(prompt);
        // Record equality compares the doubles exactly: 1.1 * 1.1 must be 1.2100000000000002, not 1.21.
        Assert.Equal(expected, actual);
    }

    [Theory]
    [MemberData(nameof(ErrorCases))]
    public void WeightPythonCannotParseThrowsNamingTheWeightAndTheFix(int index, string prompt)
    {
        Assert.StartsWith("ValueError: could not convert string to float", LazyCases.Value[index].Error);
        var error = Assert.Throws<ArgumentException>(() => PromptAttention.Parse(prompt));
        Assert.Contains("\"1.2.3\"", error.Message);
        Assert.Contains("(text:1.2)", error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }

    // Python facts the golden file does not cover: re's \d is any Unicode decimal digit and float() reads them;
    // float() refuses a number without digits; \b sees "²" and "é" as word characters.

    [Theory]
    [InlineData("(a:\u0661.\u0665)", 1.5)] // Arabic-Indic ١.٥
    [InlineData("(a:\uFF12)", 2.0)] // full-width ２
    [InlineData("(a:\U0001D7D1)", 3.0)] // mathematical bold 𝟑, outside the BMP
    public void WeightInAnyScriptsDigitsIsANumber(string prompt, double weight) =>
        Assert.Equal([new PromptPiece("a", weight)], PromptAttention.Parse(prompt));

    [Fact]
    public void WeightWithoutDigitsThrows() =>
        Assert.Throws<ArgumentException>(() => PromptAttention.Parse("(a:.)"));

    [Fact]
    public void WeightWithoutOpenBracketIsText() =>
        Assert.Equal([new PromptPiece("a:1.2.3)", 1.0)], PromptAttention.Parse("a:1.2.3)"));

    [Theory]
    [InlineData("x\u00B2BREAK y")] // ² is \w in Python (str.isalnum), not in .NET's \w
    [InlineData("\u00E9BREAK y")]
    [InlineData("_BREAK y")]
    public void BreakTouchingAWordCharacterIsText(string prompt) =>
        Assert.Equal([new PromptPiece(prompt, 1.0)], PromptAttention.Parse(prompt));

    [Fact]
    public void BreakAfterInformationSeparatorDropsIt() => // U+001F is white space for Python, not for .NET
        Assert.Equal([new PromptPiece("a", 1.0), new PromptPiece("BREAK", -1), new PromptPiece("b", 1.0)],
            PromptAttention.Parse("a\u001FBREAK\u001Fb"));

    [Fact]
    public void BreakWeightedByBracketsIsNotABreak()
    {
        var pieces = PromptAttention.Parse("(a BREAK b:1.3)");
        Assert.DoesNotContain(pieces, p => p.IsBreak);
        Assert.Contains(PromptAttention.Parse("a BREAK b"), p => p.IsBreak);
    }
}
