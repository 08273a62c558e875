using System.Text;
using SharpDiffusion.Text;

namespace SharpDiffusion.Tests.T5;

/// <summary>spiece.model files that are not what they should be: one line naming the file, never a crash.</summary>
public class SentencePieceModelTests
{
    static string GoldenModel => System.IO.Path.Combine(T5GoldenFiles.TokenizerDir("sd3/tiny-sd3"), T5Tokenizer.SpieceFile);

    static void AssertOneLineNaming(Exception e, string path)
    {
        Assert.True(e is InvalidDataException or NotSupportedException, $"{e.GetType().Name}: {e.Message}");
        Assert.Contains(path, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Golden_model_is_a_unigram_model_with_nmt_nfkc_rules()
    {
        var model = SentencePieceModel.Load(GoldenModel);
        Assert.Equal(1, model.ModelType);
        Assert.Equal("nmt_nfkc", model.NormalizerName);
        Assert.NotEmpty(model.PrecompiledCharsMap);
        Assert.Equal(SentencePieceType.Unknown, model.Pieces[model.UnkId].Type);
        Assert.Equal(T5GoldenFiles.Cases("sd3/tiny-sd3").VocabSize, model.Pieces.Count + 100);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(1000)]
    [InlineData(100000)]
    public void A_truncated_file_names_itself(int keep)
    {
        using var dir = new TempDir();
        string path = dir.File("spiece.model");
        File.WriteAllBytes(path, File.ReadAllBytes(GoldenModel)[..keep]);
        AssertOneLineNaming(Assert.ThrowsAny<Exception>(() => SentencePieceModel.Load(path)), path);
    }

    [Fact]
    public void Random_bytes_name_the_file()
    {
        using var dir = new TempDir();
        string path = dir.File("spiece.model");
        var bytes = new byte[4096];
        new Random(7).NextBytes(bytes);
        File.WriteAllBytes(path, bytes);
        AssertOneLineNaming(Assert.ThrowsAny<Exception>(() => SentencePieceModel.Load(path)), path);
    }

    [Fact]
    public void A_model_without_an_unknown_piece_is_refused() =>
        AssertOneLineNaming(Assert.ThrowsAny<Exception>(() => Parse(Piece("▁a", -1, 1), Piece("b", -2, 1))), "test.model");

    [Fact]
    public void A_repeated_piece_is_refused() =>
        AssertOneLineNaming(Assert.ThrowsAny<Exception>(() => Parse(Piece("<unk>", 0, 2), Piece("a", -1, 1), Piece("a", -2, 1))), "test.model");

    [Fact]
    public void A_bpe_model_is_refused()
    {
        byte[] trainer = Field(2, Varint(3 << 3 | 0).Concat(Varint(2)).ToArray()); // model_type = BPE
        var e = Assert.Throws<NotSupportedException>(() => Parse([.. Piece("<unk>", 0, 2), .. trainer]));
        AssertOneLineNaming(e, "test.model");
    }

    [Theory]
    [InlineData(new byte[] { 1, 2 })]                                   // shorter than its header
    [InlineData(new byte[] { 0xFF, 0, 0, 0, 1, 2, 3, 4 })]              // trie size past the end
    [InlineData(new byte[] { 8, 0, 0, 0, 0, 0xFC, 0xFF, 0xFF, 0x61, 0, 0, 0, 0 })] // first unit points far outside the trie
    public void A_corrupt_charsmap_is_refused_at_load_or_at_use(byte[] charsMap)
    {
        byte[] normalizer = Field(3, Field(2, charsMap));
        var e = Record.Exception(() => new SentencePieceProcessor(Parse([.. Piece("<unk>", 0, 2), .. Piece("▁a", -1, 1), .. normalizer])).Encode("a"));
        Assert.NotNull(e);
        AssertOneLineNaming(e, "test.model");
    }

    static SentencePieceModel Parse(params byte[][] fields) => SentencePieceModel.Parse(fields.SelectMany(f => f).ToArray(), "test.model");

    static SentencePieceModel Parse(byte[] bytes) => SentencePieceModel.Parse(bytes, "test.model");

    // ModelProto.pieces (field 1) = { piece (1), score (2, fixed32), type (3) }.
    static byte[] Piece(string text, float score, int type) =>
        Field(1, [.. Field(1, Encoding.UTF8.GetBytes(text)), .. Varint(2 << 3 | 5), .. BitConverter.GetBytes(score), .. Varint(3 << 3), .. Varint((ulong)type)]);

    static byte[] Field(int number, byte[] payload) => [.. Varint((ulong)(number << 3 | 2)), .. Varint((ulong)payload.Length), .. payload];

    static byte[] Varint(ulong v)
    {
        var bytes = new List<byte>();
        do { bytes.Add((byte)(v & 0x7F | (v > 0x7F ? 0x80u : 0))); v >>= 7; } while (v != 0);
        return [.. bytes];
    }
}
