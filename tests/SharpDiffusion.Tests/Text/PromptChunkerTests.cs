using SharpDiffusion.Text;

namespace SharpDiffusion.Tests.Text;

/// <summary>
/// A1111's 75-token chunks (<c>tokenize_line</c>, facts from the golden README's "A1111 prompt weighting") on the real
/// CLIP tokenizers: golden/clip-tokenizer (SD1, pad = EOS = 49407) and golden/models/tiny-sd2/tokenizer (pad "!" = 0).
/// </summary>
public class PromptChunkerTests
{
    static ClipTokenizer Sd1 => TokenizerGoldenFiles.Sd1Tokenizer;
    static ClipTokenizer Sd2 => TokenizerGoldenFiles.Sd2Tokenizer;

    static int Id(ClipTokenizer tokenizer, string word) => tokenizer.ConvertTokensToIds([word + "</w>"])[0];

    /// <summary>BOS, the given ids, EOS up to 77: the SD1 chunk A1111 builds around them.</summary>
    static int[] Sd1Chunk(params int[] ids) =>
        [Sd1.BosTokenId, .. ids, .. Enumerable.Repeat(Sd1.EosTokenId, 76 - ids.Length)];

    static int[] Repeat(int id, int count) => Enumerable.Repeat(id, count).ToArray();

    static float[] Ones(int count) => Enumerable.Repeat(1f, count).ToArray();

    /// <summary>(case id, prompt): the golden tokenizer prompts that fit in 75 tokens and use no emphasis syntax.</summary>
    public static TheoryData<int, string> PlainShortPrompts()
    {
        var data = new TheoryData<int, string>();
        foreach (var c in TokenizerGoldenFiles.Cases)
            if (!c.Truncated && c.Text.IndexOfAny(['(', ')', '[', ']', '\\']) < 0 && !c.Text.Contains("BREAK"))
                data.Add(c.Id, c.Text);
        return data;
    }

    [Theory]
    [MemberData(nameof(PlainShortPrompts))]
    public void ShortPromptIsOneChunkEqualToEncode(int id, string prompt)
    {
        var chunks = new PromptChunker(Sd1).Chunk(prompt);

        Assert.Equal(TokenizerGoldenFiles.Cases.Single(c => c.Id == id).InputIds, Assert.Single(chunks.Ids));
        Assert.All(Assert.Single(chunks.Multipliers), m => Assert.Equal(1.0f, m));
        Assert.Equal(Sd1.Tokenize(prompt).Count, chunks.TokenCount);
        Assert.Equal(75, chunks.TargetTokenCount);
    }

    [Fact]
    public void EmptyPromptIsOneEmptyChunk()
    {
        var chunker = new PromptChunker(Sd1);
        var chunks = chunker.Chunk("");

        Assert.Equal(Sd1.Encode(""), Assert.Single(chunks.Ids));
        Assert.Equal(chunker.EmptyChunk().Ids, chunks.Ids[0]);
        Assert.Equal(0, chunks.TokenCount);
        Assert.Equal(75, chunks.TargetTokenCount);
    }

    [Fact]
    public void Prompt200TokensGivesThreeChunks()
    {
        string prompt = string.Join(" ", Enumerable.Repeat("cat", 200));
        int cat = Id(Sd1, "cat");
        Assert.Equal(200, Sd1.Tokenize(prompt).Count);

        var chunks = new PromptChunker(Sd1).Chunk(prompt);

        Assert.Equal([Sd1Chunk(Repeat(cat, 75)), Sd1Chunk(Repeat(cat, 75)), Sd1Chunk(Repeat(cat, 50))], chunks.Ids);
        Assert.Equal(200, chunks.TokenCount);
        Assert.Equal(225, chunks.TargetTokenCount);
    }

    [Fact]
    public void BreakClosesTheChunk()
    {
        var chunks = new PromptChunker(Sd1).Chunk("a cat BREAK a dog");

        Assert.Equal([Sd1.Encode("a cat"), Sd1.Encode("a dog")], chunks.Ids);
        Assert.Equal(75 + 2, chunks.TokenCount); // a closed chunk counts 75, padding included
    }

    [Fact]
    public void BreakAtTheStartGivesAnEmptyFirstChunk()
    {
        var chunks = new PromptChunker(Sd1).Chunk("BREAK a dog");

        Assert.Equal([Sd1.Encode(""), Sd1.Encode("a dog")], chunks.Ids);
    }

    [Fact]
    public void BreakInsideWeightedBracketsDoesNotClose()
    {
        var chunks = new PromptChunker(Sd1).Chunk("(a BREAK b:1.3)");

        // The pieces are ("a", 1.3), ("BREAK", -1.3), ("b", 1.3): BREAK stays a word, tokenised as "break".
        Assert.Equal(Sd1.Encode("a break b"), Assert.Single(chunks.Ids));
        Assert.Equal([1f, 1.3f, -1.3f, 1.3f], chunks.Multipliers[0][..4]);
        Assert.All(chunks.Multipliers[0][4..], m => Assert.Equal(1f, m));
    }

    [Fact]
    public void WeightsLandOnTheirTokens()
    {
        var chunks = new PromptChunker(Sd1).Chunk("a (red:1.5) ball, ((blue)) [sky]");

        int[] words = [Id(Sd1, "a"), Id(Sd1, "red"), Id(Sd1, "ball"), Id(Sd1, ","), Id(Sd1, "blue"), Id(Sd1, "sky")];
        Assert.Equal(Sd1Chunk(words), Assert.Single(chunks.Ids));
        float[] expected = [1f, 1f, 1.5f, 1f, 1f, (float)(1.1 * 1.1), (float)(1 / 1.1), .. Ones(70)];
        Assert.Equal(expected, chunks.Multipliers[0]);
    }

    /// <summary>70 x "cat", ",", 10 x "dog": the chunk fills up 5 tokens after the comma.</summary>
    static readonly string CommaNearTheEnd =
        string.Join(" ", Enumerable.Repeat("cat", 70)) + ", " + string.Join(" ", Enumerable.Repeat("dog", 10));

    [Fact]
    public void CommaBacktrackMovesTheWordsAfterTheCommaToTheNextChunk()
    {
        int cat = Id(Sd1, "cat"), comma = Id(Sd1, ","), dog = Id(Sd1, "dog");

        var chunks = new PromptChunker(Sd1, commaPaddingBacktrack: 20).Chunk(CommaNearTheEnd);

        Assert.Equal([Sd1Chunk([.. Repeat(cat, 70), comma]), Sd1Chunk(Repeat(dog, 10))], chunks.Ids);
        Assert.Equal(75 + 10, chunks.TokenCount);
    }

    [Theory]
    [InlineData(0)] // off
    [InlineData(4)] // the comma is 5 tokens from the end: too far
    public void CommaBacktrackOffOrTooShortCutsAt75(int commaPaddingBacktrack)
    {
        int cat = Id(Sd1, "cat"), comma = Id(Sd1, ","), dog = Id(Sd1, "dog");

        var chunks = new PromptChunker(Sd1, commaPaddingBacktrack).Chunk(CommaNearTheEnd);

        Assert.Equal([Sd1Chunk([.. Repeat(cat, 70), comma, .. Repeat(dog, 4)]), Sd1Chunk(Repeat(dog, 6))], chunks.Ids);
        Assert.Equal(75 + 6, chunks.TokenCount);
    }

    [Fact]
    public void CommaBacktrackMovesTheWeightsWithTheTokens()
    {
        string prompt = string.Join(" ", Enumerable.Repeat("cat", 70)) + ", (dog:1.5) " + string.Join(" ", Enumerable.Repeat("dog", 9));

        var chunks = new PromptChunker(Sd1).Chunk(prompt);

        Assert.All(chunks.Multipliers[0], m => Assert.Equal(1f, m));
        Assert.Equal([1f, 1.5f, .. Ones(75)], chunks.Multipliers[1]);
    }

    [Fact]
    public void Sd2ReplacesEverythingAfterTheFirstEosWithPad()
    {
        Assert.NotEqual(Sd2.EosTokenId, Sd2.PadTokenId);
        var chunker = new PromptChunker(Sd2);

        var chunks = chunker.Chunk("a cat BREAK a dog");

        // Sd2.Encode pads with "!" (0) after EOS, as diffusers' SD2 pipeline does.
        Assert.Equal([Sd2.Encode("a cat"), Sd2.Encode("a dog")], chunks.Ids);
        Assert.Equal([Sd2.BosTokenId, Sd2.EosTokenId, .. Repeat(Sd2.PadTokenId, 75)], chunker.EmptyChunk().Ids);
        Assert.All(chunks.Multipliers.SelectMany(m => m), m => Assert.Equal(1f, m));
    }

    [Fact]
    public void Sd2FullChunkEndsWithEos()
    {
        string prompt = string.Join(" ", Enumerable.Repeat("cat", 80));

        var chunks = new PromptChunker(Sd2).Chunk(prompt);

        Assert.Equal([Sd2.BosTokenId, .. Repeat(Id(Sd2, "cat"), 75), Sd2.EosTokenId], chunks.Ids[0]);
        Assert.Equal(Sd2.Encode(string.Join(" ", Enumerable.Repeat("cat", 5))), chunks.Ids[1]);
    }

    [Fact]
    public void BatchIsPaddedWithEmptyChunks()
    {
        var chunker = new PromptChunker(Sd1);
        string longPrompt = string.Join(" ", Enumerable.Repeat("cat", 100));

        var batch = chunker.ChunkBatch(["a dog", longPrompt]);

        Assert.Equal([2, 2], batch.Select(c => c.ChunkCount));
        Assert.Equal([Sd1.Encode("a dog"), [Sd1.BosTokenId, .. Repeat(Sd1.EosTokenId, 76)]], batch[0].Ids);
        Assert.All(batch[0].Multipliers[1], m => Assert.Equal(1f, m));
        Assert.Equal(2, batch[0].TokenCount);
        Assert.Equal(chunker.Chunk(longPrompt).Ids, batch[1].Ids);
    }

    [Fact]
    public void Sd2BatchPaddingChunkIsPadded()
    {
        var batch = new PromptChunker(Sd2).ChunkBatch(["a dog", "a cat BREAK a dog"]);

        Assert.Equal([Sd2.Encode("a dog"), Sd2.Encode("")], batch[0].Ids);
    }
}
