using SharpDiffusion.Loading;
using SharpDiffusion.Models.Clip;
using SharpDiffusion.Models.T5;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Text;
using static TorchSharp.torch;

namespace SharpDiffusion.Conditioning;

/// <summary>
/// Flux.1: diffusers 0.31 FluxPipeline.encode_prompt. CLIP-L (text_encoder, CLIPTextModel) gives only its pooled output
/// (the final-norm hidden state at the first end token) [B, 768] → pooled_projections; T5 (text_encoder_2) gives the
/// sequence: last_hidden_state of the prompt padded/cut to max_sequence_length tokens (no attention mask) [B, L, 4096]
/// → encoder_hidden_states. prompt_2 (T5's text) defaults to the prompt. No negative rows: Flux runs without
/// classifier-free guidance. L defaults to diffusers' 512, or 256 for a model without guidance embedding (schnell, as
/// its model card calls it).
/// </summary>
public sealed class FluxTextConditioner : ITextConditioner
{
    readonly ComponentWeights _clip, _t5;
    readonly Device _device;

    /// <param name="jointAttentionDim">the transformer's text width: T5's d_model must equal it.</param>
    /// <param name="pooledProjectionDim">the transformer's pooled width: CLIP's hidden size must equal it.</param>
    /// <param name="defaultMaxSequenceLength">T5 tokens when the options give none.</param>
    public FluxTextConditioner(ClipTokenizer tokenizer, ComponentWeights textEncoder, T5Tokenizer tokenizer2, ComponentWeights textEncoder2,
        int jointAttentionDim, int pooledProjectionDim, int defaultMaxSequenceLength, Device device)
    {
        (Tokenizer, _clip, Tokenizer2, _t5, DefaultMaxSequenceLength, _device) = (tokenizer, textEncoder, tokenizer2, textEncoder2, defaultMaxSequenceLength, device);
        if (T5.Config.DModel != jointAttentionDim)
            throw new InvalidDataException($"text_encoder_2/config.json d_model {T5.Config.DModel} is not the Flux transformer's joint_attention_dim {jointAttentionDim}: the T5 belongs to another model.");
        if (TextEncoder.Config.HiddenSize != pooledProjectionDim)
            throw new InvalidDataException($"text_encoder/config.json hidden_size {TextEncoder.Config.HiddenSize} is not the Flux transformer's pooled_projection_dim {pooledProjectionDim}: the CLIP belongs to another model.");
    }

    public ClipTokenizer Tokenizer { get; }
    public T5Tokenizer Tokenizer2 { get; }
    public ClipTextModel TextEncoder => (ClipTextModel)_clip.Module;
    public T5EncoderModel T5 => (T5EncoderModel)_t5.Module;
    public int DefaultMaxSequenceLength { get; }
    public IReadOnlyList<ComponentWeights> Encoders => [_clip, _t5];

    /// <summary>CLIP-L, then T5 (9.5 GB in bf16) each brought into memory alone (with <see cref="LoadOptions.LowMemory"/>:
    /// read, run, freed), so the peak is T5's, not both together.</summary>
    public bool ReadsEncodersOneAtATime => true;

    public void Validate(GenerationOptions o)
    {
        if (o.ClipSkip != 1)
            throw new ArgumentException($"Clip skip {o.ClipSkip}: Flux uses CLIP's pooled output only, which clip skip does not change; leave it at 1.");
        if (new[] { o.NegativePrompts, o.NegativePrompts2, o.NegativePrompts3 }.Any(n => n?.Any(text => text.Length > 0) == true))
            throw new ArgumentException("Flux models take no negative prompt (diffusers' FluxPipeline runs without classifier-free guidance); remove it.");
        if (o.Prompts3 is not null)
            throw new ArgumentException("Flux has two text encoders: give T5's prompt as prompt_2 (--prompt-2), not prompt_3.");
        if (o.PromptEmbeds is not null || o.PooledPromptEmbeds is not null || o.NegativePromptEmbeds is not null)
            throw new NotSupportedException("Precomputed prompt embeddings are not supported for Flux models yet; give the prompt text.");
        if (o.PromptSyntax == PromptSyntax.A1111)
            throw new NotSupportedException("AUTOMATIC1111's prompt syntax is not supported for Flux models; use the plain syntax.");
        if (o.OriginalSize is not null || o.TargetSize is not null || o.CropsCoordsTopLeft is not null
            || o.NegativeOriginalSize is not null || o.NegativeTargetSize is not null || o.NegativeCropsCoordsTopLeft is not null)
            throw new ArgumentException("The size/crop conditioning is for SDXL models; this is a Flux model.");
    }

    /// <summary>T5 [B, L, D_T5] and CLIP pooled [B, P]; never guided rows.</summary>
    public TextConditioning Encode(PromptBatch batch, ICollection<string> warnings)
    {
        var o = batch.Options;
        var (embeds, pooled) = EncodePrompt(batch.Prompts, batch.Each(o.Prompt2For), o.MaxSequenceLength ?? DefaultMaxSequenceLength, warnings);
        return new TextConditioning(embeds) { Pooled = pooled };
    }

    /// <summary>encode_prompt: prompts (CLIP-L) and prompts2 (T5) → (prompt_embeds [B, L, D_T5], pooled_prompt_embeds [B, P])
    /// in the model dtype.</summary>
    public (Tensor Embeds, Tensor Pooled) EncodePrompt(IReadOnlyList<string> prompts, IReadOnlyList<string> prompts2, int maxSequenceLength,
        ICollection<string>? warnings = null)
    {
        using var scope = NewDisposeScope();
        PromptEncoder.WarnIfTruncated(Tokenizer, prompts, warnings);
        Tensor pooled, embeds;
        using (_clip.Use())
        {
            using var clipIds = Tokenizer.EncodeBatch(prompts);                                    // [B, 77]
            pooled = TextEncoder.Run(clipIds.to(_device)).PooledOutput;                           // [B, P]
        }
        using (_t5.Use())
        {
            using var t5Ids = Tokenizer2.EncodeBatch(prompts2, maxSequenceLength);                 // [B, L]
            embeds = T5.call(t5Ids.to(_device));                                                  // [B, L, D_T5]
        }
        return (embeds.to(pooled.dtype).MoveToOuterDisposeScope(), pooled.MoveToOuterDisposeScope());
    }

    public IReadOnlyList<string> LoadTextualInversion(string path, string? token = null) =>
        TextualInversion.Load(path, token, [(Tokenizer, _clip)]);
}
