namespace SharpDiffusion.Text;

/// <summary>
/// A prompt cut into CLIP-sized chunks as AUTOMATIC1111 encodes it (see <see cref="PromptChunker"/>): each chunk is
/// 77 ids (BOS, 75 prompt or padding ids, EOS) with one emphasis multiplier per id. The text encoder runs once per
/// chunk and the outputs are concatenated: [B, 77 * ChunkCount, C].
/// </summary>
/// <param name="Ids">The ids the text encoder gets, 77 per chunk.</param>
/// <param name="Multipliers">Per id, the weight of the prompt piece it came from; 1.0 for BOS, EOS and padding.</param>
/// <param name="TokenCount">
/// A1111's token count: 75 for every chunk before the last, plus the prompt tokens in the last one (so a comma
/// backtrack or a BREAK counts its padding). The "N" of the webui's "N/75" counter.
/// </param>
public sealed record PromptChunks(IReadOnlyList<int[]> Ids, IReadOnlyList<float[]> Multipliers, int TokenCount)
{
    public int ChunkCount => Ids.Count;

    /// <summary>
    /// The token count rounded up to whole chunks, at least one (A1111's <c>get_target_prompt_token_count</c>):
    /// the "75" of "N/75", 150 once the prompt needs a second chunk.
    /// </summary>
    public int TargetTokenCount =>
        (Math.Max(TokenCount, 1) + PromptChunker.ChunkLength - 1) / PromptChunker.ChunkLength * PromptChunker.ChunkLength;
}
