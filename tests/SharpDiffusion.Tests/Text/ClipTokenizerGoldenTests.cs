namespace SharpDiffusion.Tests.Text;

/// <summary>
/// Every prompt of golden/tokenizer_cases.json (transformers' slow CLIPTokenizer, no ftfy) against
/// golden/clip-tokenizer: the padded/truncated input_ids, and the untruncated tokens and ids.
/// </summary>
public class ClipTokenizerGoldenTests
{
    /// <summary>(id, prompt): the prompt makes each case readable in the test list; expectations are looked up by id.</summary>
    public static TheoryData<int, string> Prompts()
    {
        var data = new TheoryData<int, string>();
        foreach (var c in TokenizerGoldenFiles.Cases)
            data.Add(c.Id, c.Text);
        return data;
    }

    [Theory]
    [MemberData(nameof(Prompts))]
    public void Case(int id, string prompt)
    {
        var expected = TokenizerGoldenFiles.Cases.Single(c => c.Id == id);
        var tokenizer = TokenizerGoldenFiles.Sd1Tokenizer;

        string[] tokensWithEnds = [tokenizer.BosToken, .. tokenizer.Tokenize(prompt), tokenizer.EosToken];
        Assert.Equal(expected.TokensUntruncated, tokensWithEnds);

        int[] untruncated = tokenizer.EncodeUntruncated(prompt);
        Assert.Equal(expected.InputIdsUntruncated, untruncated);
        Assert.Equal(expected.NumUntruncated, untruncated.Length);
        Assert.Equal(expected.Truncated, untruncated.Length > tokenizer.ModelMaxLength);

        Assert.Equal(expected.InputIds, tokenizer.Encode(prompt));
    }
}
