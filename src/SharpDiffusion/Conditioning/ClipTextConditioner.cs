using SharpDiffusion.Loading;
using SharpDiffusion.Models.Clip;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Text;
using static TorchSharp.torch;

namespace SharpDiffusion.Conditioning;

/// <summary>
/// SD 1.x/2.x: one CLIP text encoder. The conditioning is its hidden states [(2)B, T, D] (T = 77, or 77·k with
/// AUTOMATIC1111's chunks), uncond rows first when guided; or the caller's prompt_embeds, repeated per image.
/// </summary>
public sealed class ClipTextConditioner : ITextConditioner
{
    readonly ComponentWeights _weights;
    readonly Device _device;
    readonly ScalarType _dtype;

    public ClipTextConditioner(ClipTokenizer tokenizer, ComponentWeights textEncoder, Device device, ScalarType dtype)
    {
        (Tokenizer, _weights, _device, _dtype) = (tokenizer, textEncoder, device, dtype);
        PromptEncoder = new PromptEncoder(tokenizer, TextEncoder, device);
    }

    public ClipTokenizer Tokenizer { get; }
    public ClipTextModel TextEncoder => (ClipTextModel)_weights.Module;
    public PromptEncoder PromptEncoder { get; }
    public IReadOnlyList<ComponentWeights> Encoders => [_weights];

    public void Validate(GenerationOptions o)
    {
        if (o.ClipSkip > TextEncoder.Config.NumHiddenLayers)
            throw new ArgumentException($"Clip skip {o.ClipSkip} does not fit this text encoder of {TextEncoder.Config.NumHiddenLayers} layers; use 1 to {TextEncoder.Config.NumHiddenLayers}.");
        if (o.Prompts2 is not null || o.NegativePrompts2 is not null || o.OriginalSize is not null || o.TargetSize is not null
            || o.CropsCoordsTopLeft is not null || o.NegativeOriginalSize is not null || o.NegativeTargetSize is not null || o.NegativeCropsCoordsTopLeft is not null)
            throw new ArgumentException("prompt_2, negative_prompt_2 and the size/crop conditioning are for SDXL models; this is an SD 1.x/2.x model.");
        if (o.PooledPromptEmbeds is not null)
            throw new ArgumentException("Pooled prompt embeddings are for SDXL models; this is an SD 1.x/2.x model.");
        Sd3TextConditioner.RefuseT5Options(o, "an SD 1.x/2.x model");
    }

    public TextConditioning Encode(PromptBatch batch, ICollection<string> warnings) => new(EncodeHiddenStates(batch, warnings));

    /// <summary>The prompts encoded (or the caller's embeddings), each repeated per image, with the unconditional rows first
    /// when guided: [(2)B, T, D] in the model dtype.</summary>
    Tensor EncodeHiddenStates(PromptBatch batch, ICollection<string> warnings)
    {
        var (o, guided) = (batch.Options, batch.Guided);
        if (o.PromptEmbeds is not { } given)
            return guided
                ? PromptEncoder.EncodeGuided(batch.Negatives, batch.Prompts, o.PromptSyntax, o.ClipSkip, warnings)
                : PromptEncoder.Encode(batch.Prompts, o.PromptSyntax, o.ClipSkip, warnings);

        using var scope = NewDisposeScope();
        var cond = given.to(_dtype).to(_device).repeat_interleave(o.NumImagesPerPrompt, 0);      // [B, T, D]
        if (!guided)
            return cond.MoveToOuterDisposeScope();
        Tensor uncond;
        if (o.NegativePromptEmbeds is { } negative)
            uncond = negative.to(_dtype).to(_device).repeat_interleave(o.NumImagesPerPrompt, 0);
        else
        {
            var empty = PromptEncoder.Encode(batch.Negatives, PromptSyntax.Plain, o.ClipSkip);       // [B, 77, D]
            if (cond.shape[1] % empty.shape[1] != 0)
                throw new ArgumentException($"Prompt embeddings of {cond.shape[1]} tokens need negative prompt embeddings of the same shape (the empty prompt is {empty.shape[1]}).");
            uncond = empty.repeat(1, cond.shape[1] / empty.shape[1], 1);
        }
        return cat([uncond, cond], 0).MoveToOuterDisposeScope();
    }

    public IReadOnlyList<string> LoadTextualInversion(string path, string? token = null) =>
        TextualInversion.Load(path, token, [(Tokenizer, _weights)]);
}
