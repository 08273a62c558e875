namespace SharpDiffusion.Tests.Text;

/// <summary>
/// golden/sd2/tokenizer_sd1_vs_sd2.json: the same prompts through the SD1 tokenizer (pad = EOS) and the SD2 one
/// (pad = "!" = id 0, which as a special token is also split out of the text).
/// </summary>
public class ClipTokenizerSd2Tests
{
    /// <summary>(index, prompt): the prompt names the case in the test list; expectations are looked up by index.</summary>
    public static TheoryData<int, string> Prompts()
    {
        var data = new TheoryData<int, string>();
        var cases = TokenizerGoldenFiles.Sd1VsSd2.Cases;
        for (int i = 0; i < cases.Length; i++)
            data.Add(i, cases[i].Text);
        return data;
    }

    [Fact]
    public void Sd2PadTokenIsExclamationMarkWithId0()
    {
        var golden = TokenizerGoldenFiles.Sd1VsSd2;
        var tokenizer = TokenizerGoldenFiles.Sd2Tokenizer;
        Assert.Equal(golden.Sd2PadToken, tokenizer.PadToken);
        Assert.Equal(golden.Sd2PadTokenId, tokenizer.PadTokenId);
        string[] specialTokens = [tokenizer.BosToken, tokenizer.EosToken, tokenizer.PadToken];
        Assert.Equal(golden.Sd2AllSpecialTokens, specialTokens);
    }

    [Theory]
    [MemberData(nameof(Prompts))]
    public void Sd1Tokenizer(int index, string prompt)
    {
        var expected = TokenizerGoldenFiles.Sd1VsSd2.Cases[index];
        var tokenizer = TokenizerGoldenFiles.Sd1Tokenizer;
        Assert.Equal(expected.Sd1Tokens, tokenizer.Tokenize(prompt));
        Assert.Equal(expected.Sd1InputIds, tokenizer.Encode(prompt));
    }

    [Theory]
    [MemberData(nameof(Prompts))]
    public void Sd2Tokenizer(int index, string prompt)
    {
        var expected = TokenizerGoldenFiles.Sd1VsSd2.Cases[index];
        var tokenizer = TokenizerGoldenFiles.Sd2Tokenizer;
        Assert.Equal(expected.Sd2Tokens, tokenizer.Tokenize(prompt));
        Assert.Equal(expected.Sd2InputIds, tokenizer.Encode(prompt));
    }
}
