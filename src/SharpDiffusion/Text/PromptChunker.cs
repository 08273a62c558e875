namespace SharpDiffusion.Text;

/// <summary>
/// AUTOMATIC1111's way past CLIP's 77-token limit (<c>FrozenCLIPEmbedderWithCustomWords.tokenize_line</c> in
/// <c>modules/sd_hijack_clip.py</c>):
/// <list type="number">
/// <item>the prompt is parsed into weighted pieces (<see cref="PromptAttention"/>) and each piece is tokenised on its
/// own, without BOS/EOS and without truncation;</item>
/// <item>the tokens fill chunks of 75, each token carrying its piece's weight; a chunk closes when it is full or at a
/// BREAK piece;</item>
/// <item>comma padding backtrack: when a chunk is full and its last comma is at most
/// <see cref="CommaPaddingBacktrack"/> tokens from the end, the tokens after that comma move to the next chunk, so a
/// short comma-separated phrase is not cut in two;</item>
/// <item>a closed chunk is padded with EOS to 75 and wrapped as BOS + 75 + EOS = 77 ids, with multiplier 1.0 for
/// BOS, EOS and padding; an empty prompt still gives one chunk.</item>
/// </list>
/// For a tokenizer whose pad id is not its EOS id (SD2's "!"), every id after the first EOS of a chunk becomes the
/// pad id, as A1111 does before its OpenCLIP text encoder. Textual-inversion embeddings are not handled here.
/// </summary>
public sealed class PromptChunker
{
    /// <summary>Prompt tokens per chunk: CLIP's 77 positions minus BOS and EOS.</summary>
    public const int ChunkLength = 75;

    /// <summary>A1111's default for the "comma_padding_backtrack" setting.</summary>
    public const int DefaultCommaPaddingBacktrack = 20;

    readonly ClipTokenizer _tokenizer;
    readonly int? _commaId;

    /// <param name="tokenizer">The model's CLIP tokenizer (SD1 or SD2).</param>
    /// <param name="commaPaddingBacktrack">How far back from a chunk's end a comma may be to move the words after it
    /// to the next chunk; 0 turns this off.</param>
    public PromptChunker(ClipTokenizer tokenizer, int commaPaddingBacktrack = DefaultCommaPaddingBacktrack)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (tokenizer.ModelMaxLength != ChunkLength + 2)
            throw new ArgumentException(
                $"The tokenizer's model_max_length is {tokenizer.ModelMaxLength}; prompt chunks need a CLIP tokenizer with 77 positions.",
                nameof(tokenizer));
        ArgumentOutOfRangeException.ThrowIfNegative(commaPaddingBacktrack);
        _tokenizer = tokenizer;
        CommaPaddingBacktrack = commaPaddingBacktrack;
        // A1111 looks the comma up as the vocabulary entry ",</w>"; a vocabulary without it has no comma rule.
        _commaId = tokenizer.TryGetTokenId(",</w>", out int comma) ? comma : null;
    }

    public int CommaPaddingBacktrack { get; }

    /// <summary>Parses <paramref name="prompt"/>'s emphasis syntax and chunks it.</summary>
    /// <exception cref="ArgumentException">A malformed weight (see <see cref="PromptAttention.Parse"/>).</exception>
    public PromptChunks Chunk(string prompt) => Chunk(PromptAttention.Parse(prompt));

    /// <summary>
    /// Chunks already parsed pieces. Pass [(prompt, 1.0)] for A1111's emphasis "None" (no syntax, no BREAK).
    /// </summary>
    public PromptChunks Chunk(IReadOnlyList<PromptPiece> pieces)
    {
        ArgumentNullException.ThrowIfNull(pieces);
        var ids = new List<int[]>();
        var multipliers = new List<float[]>();
        var tokens = new List<int>(ChunkLength);
        var weights = new List<float>(ChunkLength);
        int tokenCount = 0;
        int lastComma = -1; // position of the current chunk's last comma, -1 if none

        void CloseChunk(bool isLast = false)
        {
            tokenCount += isLast ? tokens.Count : ChunkLength;
            var (chunkIds, chunkMultipliers) = Wrap(tokens, weights);
            ids.Add(chunkIds);
            multipliers.Add(chunkMultipliers);
            tokens.Clear();
            weights.Clear();
            lastComma = -1;
        }

        foreach (var piece in pieces)
        {
            if (piece.IsBreak)
            {
                CloseChunk();
                continue;
            }
            float weight = (float)piece.Weight; // A1111's torch.asarray(multipliers): float32
            foreach (int token in _tokenizer.ConvertTokensToIds(_tokenizer.Tokenize(piece.Text)))
            {
                if (token == _commaId)
                {
                    lastComma = tokens.Count;
                }
                else if (CommaPaddingBacktrack != 0 && tokens.Count == ChunkLength && lastComma != -1
                         && tokens.Count - lastComma <= CommaPaddingBacktrack)
                {
                    int afterComma = lastComma + 1;
                    var movedTokens = tokens[afterComma..];
                    var movedWeights = weights[afterComma..];
                    tokens.RemoveRange(afterComma, tokens.Count - afterComma);
                    weights.RemoveRange(afterComma, weights.Count - afterComma);
                    CloseChunk();
                    tokens.AddRange(movedTokens);
                    weights.AddRange(movedWeights);
                }

                if (tokens.Count == ChunkLength)
                    CloseChunk();
                // A1111 places an embedding's vectors whole in one chunk: one that does not fit starts the next.
                if (tokens.Count + _tokenizer.VectorCount(token) > ChunkLength)
                    CloseChunk();
                tokens.Add(token);
                weights.Add(weight);
            }
        }
        if (tokens.Count > 0 || ids.Count == 0)
            CloseChunk(isLast: true);

        return new PromptChunks(ids, multipliers, tokenCount);
    }

    /// <summary>
    /// Chunks every prompt of a batch and pads the shorter ones with <see cref="EmptyChunk"/>s to the longest one's
    /// chunk count, as A1111 does before encoding a batch chunk by chunk.
    /// </summary>
    public IReadOnlyList<PromptChunks> ChunkBatch(IReadOnlyList<string> prompts)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        var chunked = prompts.Select(Chunk).ToList();
        int chunkCount = chunked.Count == 0 ? 0 : chunked.Max(c => c.ChunkCount);
        return chunked.Select(c => PadToChunkCount(c, chunkCount)).ToList();
    }

    /// <summary><paramref name="chunks"/> with <see cref="EmptyChunk"/>s appended up to <paramref name="chunkCount"/>;
    /// the token count is unchanged.</summary>
    public PromptChunks PadToChunkCount(PromptChunks chunks, int chunkCount)
    {
        ArgumentNullException.ThrowIfNull(chunks);
        if (chunkCount <= chunks.ChunkCount)
            return chunks;
        var ids = chunks.Ids.ToList();
        var multipliers = chunks.Multipliers.ToList();
        while (ids.Count < chunkCount)
        {
            var (emptyIds, emptyMultipliers) = EmptyChunk();
            ids.Add(emptyIds);
            multipliers.Add(emptyMultipliers);
        }
        return chunks with { Ids = ids, Multipliers = multipliers };
    }

    /// <summary>
    /// A1111's <c>empty_chunk</c>: BOS + 76 EOS (SD2: BOS, EOS, 75 pad), all multipliers 1.0; what a prompt with
    /// fewer chunks than the others in its batch is padded with.
    /// </summary>
    public (int[] Ids, float[] Multipliers) EmptyChunk() => Wrap([], []);

    /// <summary>EOS up to 75 tokens, then BOS + 75 + EOS; 1.0 for every added id; SD2's pad after the first EOS.</summary>
    (int[] Ids, float[] Multipliers) Wrap(List<int> tokens, List<float> weights)
    {
        var ids = new int[ChunkLength + 2];
        var multipliers = new float[ChunkLength + 2];
        Array.Fill(ids, _tokenizer.EosTokenId);
        Array.Fill(multipliers, 1.0f);
        ids[0] = _tokenizer.BosTokenId;
        tokens.CopyTo(ids, 1);
        weights.CopyTo(multipliers, 1);
        if (_tokenizer.PadTokenId != _tokenizer.EosTokenId)
            PadAfterFirstEos(ids);
        return (ids, multipliers);
    }

    /// <summary>A1111's SD2 rule: <c>tokens[index(id_end) + 1:] = id_pad</c>.</summary>
    void PadAfterFirstEos(int[] ids)
    {
        int firstEos = Array.IndexOf(ids, _tokenizer.EosTokenId);
        Array.Fill(ids, _tokenizer.PadTokenId, firstEos + 1, ids.Length - firstEos - 1);
    }
}
