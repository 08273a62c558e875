namespace SharpDiffusion.Tests.T5;

/// <summary>
/// Every case of every v3 t5_tokenizer_cases.json (SD3, SD3.5, Flux dev at 512 tokens, Flux schnell at 256) against the
/// model's own spiece.model: the pieces of tokenizer.tokenize, the ids without padding, and the ids padded/truncated
/// as the pipelines call the tokenizer.
/// </summary>
public class T5TokenizerGoldenTests
{
    /// <summary>(case folder, case index, text): the text makes each case readable in the test list.</summary>
    public static TheoryData<string, int, string> Cases()
    {
        var data = new TheoryData<string, int, string>();
        foreach (var model in T5GoldenFiles.Models)
        {
            var file = T5GoldenFiles.Cases(model.Cases);
            for (int i = 0; i < file.Cases.Length; i++)
                data.Add(model.Cases, i, file.Cases[i].Text.Length > 40 ? file.Cases[i].Text[..40] + "…" : file.Cases[i].Text);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Case(string folder, int index, string text)
    {
        var file = T5GoldenFiles.Cases(folder);
        var expected = file.Cases[index];
        Assert.StartsWith(text.TrimEnd('…'), expected.Text, StringComparison.Ordinal);
        var tokenizer = T5GoldenFiles.Tokenizer(folder);

        if (expected.Pieces is not null)
            Assert.Equal(expected.Pieces, tokenizer.Tokenize(expected.Text));
        Assert.Equal(expected.InputIdsNoPad, tokenizer.EncodeUntruncated(expected.Text));
        Assert.Equal(expected.InputIds, tokenizer.Encode(expected.Text, file.MaxLength));
    }

    [Theory]
    [MemberData(nameof(Folders))]
    public void Vocab_size_is_the_pieces_plus_the_extra_ids(string folder) =>
        Assert.Equal(T5GoldenFiles.Cases(folder).VocabSize, T5GoldenFiles.Tokenizer(folder).VocabSize);

    public static TheoryData<string> Folders() => new(T5GoldenFiles.Models.Select(m => m.Cases));
}
