using SharpDiffusion.Models.Clip;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Text;
using static TorchSharp.torch;

namespace SharpDiffusion.Conditioning;

/// <summary>
/// Prompt text → text embeddings [B, T, D] in the text encoder's dtype. Plain syntax (diffusers): one 77-token encode
/// per prompt, longer prompts truncated with a warning. AUTOMATIC1111 syntax: see <see cref="EncodeA1111"/>.
/// </summary>
public sealed class PromptEncoder(ClipTokenizer tokenizer, ClipTextModel textEncoder, Device device)
{
    public Tensor Encode(IReadOnlyList<string> texts, PromptSyntax syntax, int clipSkip, ICollection<string>? warnings = null) =>
        syntax == PromptSyntax.A1111 ? EncodeA1111(texts, clipSkip) : EncodePlain(texts, clipSkip, warnings);

    /// <summary>Guidance's batch [uncond; cond]: [2B, T, D]. Plain: one encoder call. A1111: the two halves are encoded
    /// apart (as AUTOMATIC1111 does; emphasis keeps each half's mean) and the shorter one is padded with the encoding
    /// of the empty prompt, chunk by chunk, to the same token count.</summary>
    public Tensor EncodeGuided(IReadOnlyList<string> negatives, IReadOnlyList<string> prompts, PromptSyntax syntax, int clipSkip,
        ICollection<string>? warnings = null)
    {
        if (syntax == PromptSyntax.Plain)
            return EncodePlain([.. negatives, .. prompts], clipSkip, warnings);
        using var uncond = EncodeA1111(negatives, clipSkip);
        using var cond = EncodeA1111(prompts, clipSkip);
        using var empty = EncodeA1111([""], clipSkip);
        return PadAndJoin(uncond, cond, empty);
    }

    /// <summary>[B, 77·a, D] and [B, 77·b, D] → [2B, 77·max(a, b), D], the shorter padded with copies of
    /// <paramref name="emptyChunk"/> [1, 77, D].</summary>
    public static Tensor PadAndJoin(Tensor uncond, Tensor cond, Tensor emptyChunk)
    {
        using var scope = NewDisposeScope();
        long tokens = Math.Max(uncond.shape[1], cond.shape[1]);
        Tensor Pad(Tensor t)
        {
            long missing = (tokens - t.shape[1]) / emptyChunk.shape[1];
            return missing == 0 ? t : cat([t, emptyChunk.expand(t.shape[0], -1, -1).repeat(1, missing, 1)], 1);
        }
        return cat([Pad(uncond), Pad(cond)], 0).MoveToOuterDisposeScope();
    }

    /// <summary>diffusers' encode_prompt: ids padded/truncated to 77 → the text encoder ([−clipSkip] hidden state + final norm).</summary>
    public Tensor EncodePlain(IReadOnlyList<string> texts, int clipSkip = 1, ICollection<string>? warnings = null)
    {
        texts = texts.Select(tokenizer.ExpandMultiVectorTokens).ToList();           // diffusers' maybe_convert_prompt
        WarnIfTruncated(tokenizer, texts, warnings);
        using var ids = tokenizer.EncodeBatch(texts);                                      // [B, 77]
        using var onDevice = ids.to(device);
        return textEncoder.Encode(onDevice, clipSkip);                                     // [B, 77, D]
    }

    /// <summary>
    /// AUTOMATIC1111: each prompt parsed for emphasis and BREAK, tokenised into 75-token chunks wrapped in BOS/EOS
    /// (prompts of a batch padded to the same number of chunks with empty ones), each chunk encoded on its own,
    /// weighted with "Original" emphasis (z·w per token, then rescaled so the chunk batch keeps its mean), and the
    /// chunks concatenated: [B, 77·k, D].
    /// </summary>
    public Tensor EncodeA1111(IReadOnlyList<string> texts, int clipSkip = 1)
    {
        // Embeddings' tokens come out whole from the tokenizer; the chunker keeps a multi-vector one in one chunk, as A1111.
        texts = texts.Select(tokenizer.ExpandMultiVectorTokens).ToList();
        var batch = new PromptChunker(tokenizer).ChunkBatch(texts); // every prompt padded to the same chunk count
        using var scope = NewDisposeScope();
        var chunks = new List<Tensor>();
        for (int c = 0; c < batch[0].ChunkCount; c++)
        {
            var ids = stack(batch.Select(p => tensor(p.Ids[c].Select(i => (long)i).ToArray())));   // [B, 77]
            var weights = stack(batch.Select(p => tensor(p.Multipliers[c])));                        // [B, 77]
            var z = textEncoder.Encode(ids.to(device), clipSkip);                                    // [B, 77, D]
            chunks.Add(Emphasis.Original(z, weights).to(z.dtype));
        }
        return cat(chunks, 1).MoveToOuterDisposeScope();                                             // [B, 77·k, D]
    }

    /// <summary>A warning for each distinct text longer than the tokenizer's 77 tokens (plain syntax truncates).</summary>
    internal static void WarnIfTruncated(ClipTokenizer tokenizer, IEnumerable<string> texts, ICollection<string>? warnings)
    {
        if (warnings is null) return;
        foreach (var text in texts.Distinct())
        {
            int tokens = tokenizer.EncodeUntruncated(text).Length;
            if (tokens > tokenizer.ModelMaxLength)
                warnings.Add($"The prompt \"{Shorten(text)}\" is {tokens - 2} tokens; only the first {tokenizer.ModelMaxLength - 2} are used. " +
                    "AUTOMATIC1111 prompt syntax reads prompts of any length.");
        }
    }

    static string Shorten(string text) => text.Length <= 40 ? text : text[..37] + "...";
}
