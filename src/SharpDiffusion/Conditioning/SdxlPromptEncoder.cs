using SharpDiffusion.Models.Clip;
using SharpDiffusion.Text;
using static TorchSharp.torch;

namespace SharpDiffusion.Conditioning;

/// <summary>The numbers SDXL's UNet is told about the picture: original (height, width), crop (top, left), then target
/// (height, width) — or, for a refiner (requires_aesthetics_score), the aesthetic score instead of the target: six or five.</summary>
public sealed record SizeConditioning((int Height, int Width) OriginalSize, (int Top, int Left) CropsCoordsTopLeft, (int Height, int Width) TargetSize,
    double? AestheticScore = null)
{
    public float[] TimeIds => AestheticScore is double score
        ? [OriginalSize.Height, OriginalSize.Width, CropsCoordsTopLeft.Top, CropsCoordsTopLeft.Left, (float)score]
        : [OriginalSize.Height, OriginalSize.Width, CropsCoordsTopLeft.Top, CropsCoordsTopLeft.Left, TargetSize.Height, TargetSize.Width];
}

/// <summary>
/// diffusers' StableDiffusionXLPipeline.encode_prompt: each prompt through both text encoders (prompt_2, else the prompt,
/// for the second), their hidden states −(clip skip + 1) (the penultimate layer by default, no final norm) concatenated
/// [B, 77, D₁ + D₂], and the pooled embedding = the second encoder's text_embeds [B, P]. With force_zeros_for_empty_prompt
/// and no negative prompt at all, the negative embeddings are zeros; an explicit "" is encoded. A refiner has no first
/// encoder (<paramref name="tokenizer1"/> and <paramref name="encoder1"/> null): its embeddings are bigG's alone [B, 77, D₂].
/// </summary>
public sealed class SdxlPromptEncoder(ClipTokenizer? tokenizer1, ClipTextModel? encoder1, ClipTokenizer tokenizer2, ClipTextModel encoder2,
    Device device, bool forceZerosForEmptyPrompt)
{
    public bool ForceZerosForEmptyPrompt => forceZerosForEmptyPrompt;

    /// <summary>Prompts (and their prompt_2) → (embeddings [B, 77, D₁+D₂], pooled [B, P]).</summary>
    public (Tensor Embeds, Tensor Pooled) Encode(IReadOnlyList<string> prompts, IReadOnlyList<string> prompts2, int clipSkip, ICollection<string>? warnings = null)
    {
        using var scope = NewDisposeScope();
        if (tokenizer1 is null || encoder1 is null)
        {
            // diffusers' refiner zips [prompt, prompt_2] with its one tokenizer: bigG reads the prompt.
            var (hidden, refinerPooled) = Run(tokenizer2, encoder2, prompts, clipSkip, warnings);   // [B, 77, D₂]
            return (hidden.MoveToOuterDisposeScope(), refinerPooled!.MoveToOuterDisposeScope());
        }
        var (h1, _) = Run(tokenizer1, encoder1, prompts, clipSkip, warnings);
        var (h2, pooled) = Run(tokenizer2, encoder2, prompts2, clipSkip, warnings: null); // the same text: warned once
        var embeds = cat([h1, h2.to(h1.dtype)], -1);                                          // [B, 77, D₁ + D₂]
        return (embeds.MoveToOuterDisposeScope(), pooled!.MoveToOuterDisposeScope());
    }

    (Tensor Hidden, Tensor? Pooled) Run(ClipTokenizer tokenizer, ClipTextModel encoder, IReadOnlyList<string> texts, int clipSkip, ICollection<string>? warnings)
    {
        texts = texts.Select(tokenizer.ExpandMultiVectorTokens).ToList();
        PromptEncoder.WarnIfTruncated(tokenizer, texts, warnings);
        using var ids = tokenizer.EncodeBatch(texts);                                         // [B, 77]
        using var onDevice = ids.to(device);
        return encoder.EncodeHidden(onDevice, clipSkip + 1);
    }

    /// <summary>
    /// AUTOMATIC1111's SDXL encoding: each encoder chunks the prompt as for SD 1.x (75 tokens, BREAK, emphasis; the second
    /// with its "!" padding), encodes every chunk to hidden state −(clip skip + 1), applies "Original" emphasis to its own
    /// output, and the two are concatenated per chunk [B, 77·k, D₁ + D₂]; the pooled embedding is the first chunk's.
    /// </summary>
    public (Tensor Embeds, Tensor Pooled) EncodeA1111(IReadOnlyList<string> texts, int clipSkip)
    {
        using var scope = NewDisposeScope();
        var batch2 = new PromptChunker(tokenizer2).ChunkBatch(texts.Select(tokenizer2.ExpandMultiVectorTokens).ToList());
        var batch1 = tokenizer1 is null ? batch2 : new PromptChunker(tokenizer1).ChunkBatch(texts.Select(tokenizer1.ExpandMultiVectorTokens).ToList());
        if (batch1[0].ChunkCount != batch2[0].ChunkCount)
            throw new InvalidOperationException("The two SDXL tokenizers split the prompt into different chunks; they should share one vocabulary.");
        var chunks = new List<Tensor>();
        Tensor? pooled = null;
        for (int c = 0; c < batch1[0].ChunkCount; c++)
        {
            var weights = stack(batch1.Select(p => tensor(p.Multipliers[c])));                                  // [B, 77]
            var ids2 = stack(batch2.Select(p => tensor(p.Ids[c].Select(i => (long)i).ToArray()))).to(device);  // [B, 77]
            var (z2, chunkPooled) = encoder2.EncodeHidden(ids2, clipSkip + 1);
            pooled ??= chunkPooled;
            if (encoder1 is null)
            {
                chunks.Add(Emphasis.Original(z2, weights).to(z2.dtype));                                     // a refiner: bigG alone
                continue;
            }
            var ids1 = stack(batch1.Select(p => tensor(p.Ids[c].Select(i => (long)i).ToArray()))).to(device);
            var (z1, _) = encoder1.EncodeHidden(ids1, clipSkip + 1);
            chunks.Add(cat([Emphasis.Original(z1, weights).to(z1.dtype), Emphasis.Original(z2, weights).to(z1.dtype)], -1));
        }
        return (cat(chunks, 1).MoveToOuterDisposeScope(), pooled!.MoveToOuterDisposeScope());
    }

    /// <summary>AUTOMATIC1111's guided batch: negatives and prompts encoded apart, the shorter padded with the empty prompt's
    /// chunk; an all-empty negative is zeros (A1111 zeroes an empty SDXL negative prompt).</summary>
    public TextConditioning EncodeConditioningA1111(IReadOnlyList<string> prompts, IReadOnlyList<string> negatives, bool guided, int clipSkip,
        SizeConditioning size, SizeConditioning negativeSize)
    {
        using var scope = NewDisposeScope();
        var (embeds, pooled) = EncodeA1111(prompts, clipSkip);
        int batch = prompts.Count;
        var timeIds = tensor(size.TimeIds, device: device).unsqueeze(0).expand(batch, -1);
        if (!guided)
            return Detach(embeds, pooled, timeIds.contiguous());
        var (negEmbeds, negPooled) = negatives.All(n => n.Length == 0)
            ? (zeros_like(embeds.narrow(1, 0, 77)), zeros_like(pooled))
            : EncodeA1111(negatives, clipSkip);
        var (empty, _) = negatives.All(n => n.Length == 0) ? (zeros_like(embeds.narrow(1, 0, 77)).narrow(0, 0, 1), pooled) : EncodeA1111([""], clipSkip);
        var negTimeIds = tensor(negativeSize.TimeIds, device: device).unsqueeze(0).expand(batch, -1);
        return Detach(PromptEncoder.PadAndJoin(negEmbeds, embeds, empty), cat([negPooled, pooled], 0), cat([negTimeIds, timeIds], 0));
    }

    /// <summary>The UNet's conditioning for a batch: [uncond; cond] rows when guided, each with its pooled embedding and
    /// time ids. <paramref name="negatives"/> null = no negative prompt (zeros when the model says force_zeros_for_empty_prompt).</summary>
    public TextConditioning EncodeConditioning(IReadOnlyList<string> prompts, IReadOnlyList<string> prompts2,
        IReadOnlyList<string>? negatives, IReadOnlyList<string>? negatives2, bool guided, int clipSkip,
        SizeConditioning size, SizeConditioning negativeSize, ICollection<string>? warnings = null)
    {
        using var scope = NewDisposeScope();
        var (embeds, pooled) = Encode(prompts, prompts2, clipSkip, warnings);
        return Assemble(embeds, pooled, guided, size, negativeSize, () => NegativeFor(embeds, pooled, negatives, negatives2, clipSkip));
    }

    /// <summary>The conditioning from embeddings the caller made (diffusers' prompt_embeds and pooled_prompt_embeds,
    /// [B, T, D] and [B, P] in the model dtype); the negative ones given, or as for prompts (zeros or the encoded negatives).</summary>
    public TextConditioning FromEmbeddings(Tensor embeds, Tensor pooled, (Tensor Embeds, Tensor Pooled)? negative,
        IReadOnlyList<string>? negatives, bool guided, int clipSkip, SizeConditioning size, SizeConditioning negativeSize)
    {
        using var scope = NewDisposeScope();
        return Assemble(embeds, pooled, guided, size, negativeSize, () =>
        {
            var (negEmbeds, negPooled) = negative ?? NegativeFor(embeds, pooled, negatives, negatives, clipSkip);
            if (!negEmbeds.shape.SequenceEqual(embeds.shape))
                throw new ArgumentException($"Prompt embeddings of {embeds.shape[1]} tokens need negative prompt embeddings of the same shape (the encoded negative prompt is {negEmbeds.shape[1]}).");
            return (negEmbeds, negPooled);
        });
    }

    /// <summary>No negative prompt and force_zeros_for_empty_prompt: zeros; else the negative prompts ("" when none) encoded.</summary>
    (Tensor Embeds, Tensor Pooled) NegativeFor(Tensor embeds, Tensor pooled, IReadOnlyList<string>? negatives, IReadOnlyList<string>? negatives2, int clipSkip)
    {
        if (negatives is null && forceZerosForEmptyPrompt)
            return (zeros_like(embeds), zeros_like(pooled));
        var empty = Enumerable.Repeat("", (int)embeds.shape[0]).ToList();
        return Encode(negatives ?? empty, negatives2 ?? negatives ?? empty, clipSkip);
    }

    /// <summary>[uncond; cond] rows when guided, each with its pooled embedding and time ids (in the caller's dispose scope).</summary>
    TextConditioning Assemble(Tensor embeds, Tensor pooled, bool guided, SizeConditioning size, SizeConditioning negativeSize,
        Func<(Tensor Embeds, Tensor Pooled)> negative)
    {
        long batch = embeds.shape[0];
        var timeIds = tensor(size.TimeIds, device: device).unsqueeze(0).expand(batch, -1);      // [B, 6 or 5]
        if (!guided)
            return Detach(embeds, pooled, timeIds.contiguous());
        var (negEmbeds, negPooled) = negative();
        var negTimeIds = tensor(negativeSize.TimeIds, device: device).unsqueeze(0).expand(batch, -1);
        return Detach(cat([negEmbeds, embeds], 0), cat([negPooled, pooled], 0), cat([negTimeIds, timeIds], 0));
    }

    static TextConditioning Detach(Tensor embeds, Tensor pooled, Tensor timeIds) =>
        new(embeds.MoveToOuterDisposeScope()) { Pooled = pooled.MoveToOuterDisposeScope(), TimeIds = timeIds.MoveToOuterDisposeScope() };
}
