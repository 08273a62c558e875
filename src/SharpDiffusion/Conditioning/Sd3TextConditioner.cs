using SharpDiffusion.Loading;
using SharpDiffusion.Models.Clip;
using SharpDiffusion.Models.T5;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Text;
using static TorchSharp.torch;

namespace SharpDiffusion.Conditioning;

/// <summary>
/// SD3/SD3.5: diffusers 0.31 StableDiffusion3Pipeline.encode_prompt. CLIP-L (text_encoder) and OpenCLIP bigG
/// (text_encoder_2, padded with "!") each give hidden_states[−(clip skip + 1)] (the penultimate layer, no final norm)
/// and text_embeds (the projection of the pooled token). The two hidden states are joined on the channels
/// [B, 77, D₁+D₂], zero-padded to T5's width (joint_attention_dim), and T5's last_hidden_state [B, L, D_T5] follows on
/// the token axis: [B, 77 + L, D_T5], L = max_sequence_length (256). Without a T5 (text_encoder_3 null) its rows are
/// zeros [B, 77, D_T5], as diffusers gives. pooled = text_embeds₁ ‖ text_embeds₂ [B, P₁+P₂]. prompt_2 and prompt_3
/// default to the prompt; the negative rows are the negative prompts ("" when none: encoded, never zeros), uncond first.
/// </summary>
public sealed class Sd3TextConditioner : ITextConditioner
{
    /// <summary>diffusers' default max_sequence_length of SD3's T5 tokens.</summary>
    public const int DefaultMaxSequenceLength = 256;

    readonly ComponentWeights _weights1, _weights2;
    readonly ComponentWeights? _weights3;
    readonly Device _device;
    readonly ScalarType _dtype;
    readonly int _jointAttentionDim;

    /// <param name="jointAttentionDim">the transformer's text width (T5's d_model): the CLIP channels are padded to it.</param>
    public Sd3TextConditioner(ClipTokenizer tokenizer, ComponentWeights textEncoder, ClipTokenizer tokenizer2, ComponentWeights textEncoder2,
        T5Tokenizer? tokenizer3, ComponentWeights? textEncoder3, int jointAttentionDim, Device device, ScalarType dtype)
    {
        (Tokenizer, _weights1, Tokenizer2, _weights2, Tokenizer3, _weights3) = (tokenizer, textEncoder, tokenizer2, textEncoder2, tokenizer3, textEncoder3);
        (_jointAttentionDim, _device, _dtype) = (jointAttentionDim, device, dtype);
        if (TextEncoder.Config.ProjectionDim is null || TextEncoder2.Config.ProjectionDim is null)
            throw new InvalidDataException("SD3's text_encoder and text_encoder_2 must be CLIPTextModelWithProjection (their config.json names that architecture and a projection_dim).");
        if ((tokenizer3 is null) != (textEncoder3 is null))
            throw new ArgumentException("SD3's T5 needs both tokenizer_3 and text_encoder_3 (or neither: its rows are then zeros).");
        int clipWidth = TextEncoder.Config.HiddenSize + TextEncoder2.Config.HiddenSize;
        if (clipWidth > jointAttentionDim)
            throw new InvalidDataException($"SD3's CLIP encoders are {clipWidth} channels wide together, more than the transformer's joint_attention_dim {jointAttentionDim}: they belong to another model.");
        if (T5 is { } t5 && t5.Config.DModel != jointAttentionDim)
            throw new InvalidDataException($"text_encoder_3/config.json d_model {t5.Config.DModel} is not the transformer's joint_attention_dim {jointAttentionDim}: the T5 belongs to another model.");
    }

    public ClipTokenizer Tokenizer { get; }
    public ClipTokenizer Tokenizer2 { get; }
    public T5Tokenizer? Tokenizer3 { get; }
    public ClipTextModel TextEncoder => (ClipTextModel)_weights1.Module;
    public ClipTextModel TextEncoder2 => (ClipTextModel)_weights2.Module;
    /// <summary>The T5 encoder; null when the model has none (its rows are zeros).</summary>
    public T5EncoderModel? T5 => _weights3?.Module as T5EncoderModel;
    public IReadOnlyList<ComponentWeights> Encoders => _weights3 is null ? [_weights1, _weights2] : [_weights1, _weights2, _weights3];

    public void Validate(GenerationOptions o)
    {
        int layers = Math.Min(TextEncoder.Config.NumHiddenLayers, TextEncoder2.Config.NumHiddenLayers);
        if (o.ClipSkip < 1 || o.ClipSkip >= layers + 1)
            throw new ArgumentException($"Clip skip {o.ClipSkip} does not fit SD3's text encoders of {layers} layers; use 1 to {layers}.");
        if (o.PromptEmbeds is not null || o.PooledPromptEmbeds is not null || o.NegativePromptEmbeds is not null)
            throw new NotSupportedException("Precomputed prompt embeddings are not supported for SD3 models yet; give the prompt text.");
        if (o.PromptSyntax == PromptSyntax.A1111)
            throw new NotSupportedException("AUTOMATIC1111's prompt syntax is not supported for SD3 models; use the plain syntax.");
        if (o.OriginalSize is not null || o.TargetSize is not null || o.CropsCoordsTopLeft is not null
            || o.NegativeOriginalSize is not null || o.NegativeTargetSize is not null || o.NegativeCropsCoordsTopLeft is not null)
            throw new ArgumentException("The size/crop conditioning is for SDXL models; this is an SD3 model.");
    }

    /// <summary>What only a T5 reads, refused by the families without one (<paramref name="model"/>: "an SDXL model").</summary>
    internal static void RefuseT5Options(GenerationOptions o, string model)
    {
        if (o.Prompts3 is not null || o.NegativePrompts3 is not null || o.MaxSequenceLength is not null)
            throw new ArgumentException($"prompt_3, negative_prompt_3 and max_sequence_length are for SD3 models (their T5 encoder); this is {model}.");
    }

    /// <summary>Each encoder is brought into memory alone (with <see cref="LoadOptions.LowMemory"/>: read, run on every
    /// row set, freed), so the peak is the largest encoder (T5-XXL), not the three together.</summary>
    public bool ReadsEncodersOneAtATime => true;

    /// <summary>[(2)B, 77 + L, D_T5] and pooled [(2)B, P₁+P₂], uncond rows first when guided.</summary>
    public TextConditioning Encode(PromptBatch batch, ICollection<string> warnings)
    {
        var o = batch.Options;
        using var scope = NewDisposeScope();
        int tokens = o.MaxSequenceLength ?? DefaultMaxSequenceLength;
        var cond = new RowSet(batch.Prompts, batch.Each(o.Prompt2For), batch.Each(o.Prompt3For), warnings);
        var sets = batch.Guided
            ? new[] { new RowSet(batch.Each(o.NegativePromptFor), batch.Each(o.NegativePrompt2For), batch.Each(o.NegativePrompt3For), null), cond }
            : [cond];
        var encoded = EncodeRowSets(sets, o.ClipSkip, tokens);
        var embeds = cat(encoded.Select(e => e.Embeds).ToList(), 0);
        var pooled = cat(encoded.Select(e => e.Pooled).ToList(), 0);
        return new TextConditioning(embeds.MoveToOuterDisposeScope()) { Pooled = pooled.MoveToOuterDisposeScope() };
    }

    /// <summary>encode_prompt for one set of rows: prompts (CLIP-L), prompts2 (bigG), prompts3 (T5) → (prompt_embeds
    /// [B, 77 + L, D_T5], pooled_prompt_embeds [B, P₁+P₂]) in the model dtype.</summary>
    public (Tensor Embeds, Tensor Pooled) EncodePrompt(IReadOnlyList<string> prompts, IReadOnlyList<string> prompts2, IReadOnlyList<string> prompts3,
        int clipSkip = 1, ICollection<string>? warnings = null, int maxSequenceLength = DefaultMaxSequenceLength) =>
        EncodeRowSets([new RowSet(prompts, prompts2, prompts3, warnings)], clipSkip, maxSequenceLength)[0];

    /// <summary>The texts of one row set for each encoder; truncation is warned for the sets that carry warnings.</summary>
    sealed record RowSet(IReadOnlyList<string> Clip1, IReadOnlyList<string> Clip2, IReadOnlyList<string> T5, ICollection<string>? Warnings);

    /// <summary>encode_prompt per row set, encoder by encoder: CLIP-L for every set, then bigG, then T5.</summary>
    List<(Tensor Embeds, Tensor Pooled)> EncodeRowSets(IReadOnlyList<RowSet> sets, int clipSkip, int maxSequenceLength)
    {
        using var scope = NewDisposeScope();
        List<(Tensor Hidden, Tensor Pooled)> first, second;
        using (_weights1.Use())
            first = sets.Select(r => Clip(Tokenizer, TextEncoder, r.Clip1, clipSkip, r.Warnings)).ToList();
        using (_weights2.Use())
            second = sets.Select(r => Clip(Tokenizer2, TextEncoder2, r.Clip2, clipSkip, warnings: null)).ToList(); // the same text usually: warned once
        List<Tensor> t5;
        using (_weights3?.Use())
            t5 = sets.Select(r => T5Rows(r.T5, first[0].Hidden.shape[1], maxSequenceLength)).ToList();
        return sets.Select((_, i) =>
        {
            var (h1, pooled1) = first[i];
            var (h2, pooled2) = second[i];
            var clip = cat([h1, h2.to(h1.dtype)], -1);                                             // [B, 77, D₁+D₂]
            clip = nn.functional.pad(clip, [0, _jointAttentionDim - clip.shape[2]]);               // [B, 77, D_T5]
            var embeds = cat([clip, t5[i].to(clip.dtype)], 1);                                     // [B, 77 + L, D_T5]
            var pooled = cat([pooled1, pooled2.to(pooled1.dtype)], -1);                            // [B, P₁+P₂]
            return (embeds.MoveToOuterDisposeScope(), pooled.MoveToOuterDisposeScope());
        }).ToList();
    }

    (Tensor Hidden, Tensor Pooled) Clip(ClipTokenizer tokenizer, ClipTextModel encoder, IReadOnlyList<string> texts, int clipSkip, ICollection<string>? warnings)
    {
        texts = texts.Select(tokenizer.ExpandMultiVectorTokens).ToList();
        PromptEncoder.WarnIfTruncated(tokenizer, texts, warnings);
        using var ids = tokenizer.EncodeBatch(texts);                                              // [B, 77]
        using var onDevice = ids.to(_device);
        var (hidden, pooled) = encoder.EncodeHidden(onDevice, clipSkip + 1);
        return (hidden, pooled!);
    }

    /// <summary>T5's last_hidden_state of the texts padded/truncated to <paramref name="maxLength"/> tokens (no attention
    /// mask, as diffusers), or zeros [B, <paramref name="clipTokens"/>, D_T5] without a T5.</summary>
    Tensor T5Rows(IReadOnlyList<string> texts, long clipTokens, int maxLength)
    {
        if (T5 is not { } t5)
            return zeros([texts.Count, clipTokens, _jointAttentionDim], dtype: _dtype, device: _device);
        using var ids = Tokenizer3!.EncodeBatch(texts, maxLength);                                 // [B, L]
        using var onDevice = ids.to(_device);
        return t5.call(onDevice);
    }

    public IReadOnlyList<string> LoadTextualInversion(string path, string? token = null) =>
        TextualInversion.Load(path, token, [(Tokenizer, _weights1), (Tokenizer2, _weights2)]);
}
