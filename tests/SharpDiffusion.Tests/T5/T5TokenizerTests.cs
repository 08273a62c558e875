using System.Text.Json.Nodes;
using SharpDiffusion.Text;

namespace SharpDiffusion.Tests.T5;

/// <summary>T5Tokenizer rules beyond the golden cases, each checked against the tokenizer's own output for simpler text.</summary>
public class T5TokenizerTests
{
    static T5Tokenizer Tokenizer => T5GoldenFiles.Tokenizer("sd3/tiny-sd3");

    /// <summary>T5Tokenizer._add_eos_if_not_present: text ending in "&lt;/s&gt;" gets no second end token.</summary>
    [Fact]
    public void A_text_ending_in_the_end_token_gets_no_second_one() =>
        Assert.Equal(Tokenizer.EncodeUntruncated("a horse"), Tokenizer.EncodeUntruncated("a horse</s>"));

    /// <summary>Truncation keeps max_length − 1 tokens and puts the end token last.</summary>
    [Fact]
    public void Truncation_keeps_room_for_the_end_token()
    {
        int[] full = Tokenizer.EncodeUntruncated("a photograph of an astronaut riding a horse");
        int[] cut = Tokenizer.Encode("a photograph of an astronaut riding a horse", 5);
        Assert.Equal([.. full[..4], Tokenizer.EosTokenId], cut);
    }

    /// <summary>An extra id eats the spaces beside it (lstrip/rstrip), so spacing around it changes nothing.</summary>
    [Fact]
    public void Spaces_around_an_extra_id_do_not_matter() =>
        Assert.Equal(Tokenizer.Tokenize("a<extra_id_5>horse"), Tokenizer.Tokenize("a   <extra_id_5>  horse"));

    [Fact]
    public void Extra_ids_count_down_from_the_top_of_the_vocabulary()
    {
        Assert.Equal([Tokenizer.VocabSize - 1, Tokenizer.EosTokenId], Tokenizer.EncodeUntruncated(T5Tokenizer.ExtraIdToken(0)));
        Assert.Equal([Tokenizer.VocabSize - Tokenizer.ExtraIds, Tokenizer.EosTokenId], Tokenizer.EncodeUntruncated(T5Tokenizer.ExtraIdToken(Tokenizer.ExtraIds - 1)));
    }

    [Fact]
    public void A_folder_without_spiece_model_names_the_missing_file()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<FileNotFoundException>(() => T5Tokenizer.FromDirectory(dir.Path));
        Assert.Contains(dir.File(T5Tokenizer.SpieceFile), e.Message);
    }

    [Fact]
    public void A_non_legacy_tokenizer_config_is_refused_in_one_line()
    {
        using var dir = new TempDir();
        string source = T5GoldenFiles.TokenizerDir("sd3/tiny-sd3");
        File.Copy(System.IO.Path.Combine(source, T5Tokenizer.SpieceFile), dir.File(T5Tokenizer.SpieceFile));
        var config = (JsonObject)JsonNode.Parse(File.ReadAllText(System.IO.Path.Combine(source, T5Tokenizer.ConfigFile)))!;
        config["legacy"] = false;
        File.WriteAllText(dir.File(T5Tokenizer.ConfigFile), config.ToJsonString());
        var e = Assert.Throws<NotSupportedException>(() => T5Tokenizer.FromDirectory(dir.Path));
        Assert.Contains("legacy", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Batches_are_int64_rows_of_the_encodings()
    {
        string[] prompts = ["a horse", ""];
        using var ids = Tokenizer.EncodeBatch(prompts, 16);
        Assert.Equal(new long[] { 2, 16 }, ids.shape);
        for (int b = 0; b < prompts.Length; b++)
            Assert.Equal(Tokenizer.Encode(prompts[b], 16).Select(i => (long)i), ids[b].data<long>().ToArray());
    }
}
