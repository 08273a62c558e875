using SharpDiffusion.Loading;
using SharpDiffusion.Models.Clip;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Text;
using static TorchSharp.torch;

namespace SharpDiffusion.Conditioning;

/// <summary>
/// SDXL: CLIP-L and OpenCLIP bigG (a CLIPTextModelWithProjection). The conditioning is both encoders' hidden states
/// [(2)B, 77, D₁+D₂], the pooled embedding [(2)B, P] and the six size/crop time ids [(2)B, 6] (see <see cref="SdxlPromptEncoder"/>).
/// A refiner (no first tokenizer and encoder, requires_aesthetics_score) conditions on bigG alone [(2)B, 77, D₂] and five
/// time ids [(2)B, 5]: original size, crop, aesthetic score (6 for the prompt rows, 2.5 for the negative ones by default).
/// </summary>
public sealed class SdxlTextConditioner : ITextConditioner
{
    readonly ComponentWeights? _weights1;
    readonly ComponentWeights _weights2;
    readonly Device _device;
    readonly ScalarType _dtype;

    public SdxlTextConditioner(ClipTokenizer? tokenizer, ComponentWeights? textEncoder, ClipTokenizer tokenizer2, ComponentWeights textEncoder2,
        Device device, ScalarType dtype, bool forceZerosForEmptyPrompt, bool requiresAestheticsScore = false)
    {
        (_weights1, Tokenizer2, _weights2, _device, _dtype) = (textEncoder, tokenizer2, textEncoder2, device, dtype);
        if ((tokenizer is null) != (textEncoder is null))
            throw new ArgumentException("SDXL's first tokenizer and text encoder come together (a refiner has neither).");
        Tokenizer = tokenizer ?? tokenizer2;
        RequiresAestheticsScore = requiresAestheticsScore;
        if (TextEncoder2.Config.ProjectionDim is null)
            throw new InvalidDataException("SDXL's text_encoder_2 must be a CLIPTextModelWithProjection (its config names that architecture and a projection_dim).");
        PromptEncoder = new PromptEncoder(Tokenizer, TextEncoder, device);
        XLPromptEncoder = new SdxlPromptEncoder(tokenizer, (ClipTextModel?)textEncoder?.Module, tokenizer2, TextEncoder2, device, forceZerosForEmptyPrompt);
    }

    /// <summary>The first tokenizer (a refiner's only one: tokenizer_2).</summary>
    public ClipTokenizer Tokenizer { get; }
    public ClipTokenizer Tokenizer2 { get; }
    /// <summary>The first text encoder (a refiner's only one: text_encoder_2).</summary>
    public ClipTextModel TextEncoder => (ClipTextModel)Encoders[0].Module;
    public ClipTextModel TextEncoder2 => (ClipTextModel)_weights2.Module;
    /// <summary>A refiner: bigG only.</summary>
    public bool IsRefiner => _weights1 is null;
    /// <summary>model_index.json's requires_aesthetics_score: the time ids end with the aesthetic score, not the target size.</summary>
    public bool RequiresAestheticsScore { get; }
    /// <summary>The first encoder alone (its plain encoding, for callers that want CLIP-L's embeddings).</summary>
    public PromptEncoder PromptEncoder { get; }
    public SdxlPromptEncoder XLPromptEncoder { get; }
    public IReadOnlyList<ComponentWeights> Encoders => _weights1 is null ? [_weights2] : [_weights1, _weights2];

    /// <summary>How many numbers the time ids are: 5 with the aesthetic score, else 6.</summary>
    public int TimeIdCount => RequiresAestheticsScore ? 5 : 6;

    public void Validate(GenerationOptions o)
    {
        if (o.ClipSkip > TextEncoder.Config.NumHiddenLayers)
            throw new ArgumentException($"Clip skip {o.ClipSkip} does not fit this text encoder of {TextEncoder.Config.NumHiddenLayers} layers; use 1 to {TextEncoder.Config.NumHiddenLayers}.");
        if (o.PromptEmbeds is not null && o.PooledPromptEmbeds is null)
            throw new ArgumentException("SDXL prompt embeddings need their pooled embeddings too (PooledPromptEmbeds, diffusers' pooled_prompt_embeds).");
        if (o.PromptSyntax == PromptSyntax.A1111 && (o.Prompts2 is not null || o.NegativePrompts2 is not null))
            throw new ArgumentException("prompt_2 and negative_prompt_2 are not part of AUTOMATIC1111's syntax (it gives both SDXL text encoders the same prompt); use the plain syntax for them.");
        if (o.ClipSkip > TextEncoder2.Config.NumHiddenLayers)
            throw new ArgumentException($"Clip skip {o.ClipSkip} does not fit this SDXL text encoder of {TextEncoder2.Config.NumHiddenLayers} layers.");
        Sd3TextConditioner.RefuseT5Options(o, "an SDXL model");
        if (IsRefiner && o.Loras.Count > 0)
            throw new ArgumentException("LoRAs are not applied to an SDXL refiner (they are made for the base model's two text encoders and UNet); drop them for the refiner.");
    }

    /// <summary>Both encoders' embeddings [(2)B, 77, D₁+D₂], pooled [(2)B, P], time ids [(2)B, 6].</summary>
    public TextConditioning Encode(PromptBatch batch, ICollection<string> warnings)
    {
        var (o, prompts, guided) = (batch.Options, batch.Prompts, batch.Guided);
        var (width, height) = (batch.Width, batch.Height);
        var size = new SizeConditioning(o.OriginalSize ?? (height, width), o.CropsCoordsTopLeft ?? (0, 0), o.TargetSize ?? (height, width));
        var negativeSize = o.NegativeOriginalSize is { } no && o.NegativeTargetSize is { } nt
            ? new SizeConditioning(no, o.NegativeCropsCoordsTopLeft ?? (0, 0), nt) : size;
        if (RequiresAestheticsScore)
        {
            // diffusers' img2img _get_add_time_ids: each negative size defaults to the positive one.
            size = size with { AestheticScore = o.AestheticScore };
            negativeSize = new SizeConditioning(o.NegativeOriginalSize ?? size.OriginalSize, o.NegativeCropsCoordsTopLeft ?? size.CropsCoordsTopLeft,
                o.NegativeTargetSize ?? size.TargetSize, o.NegativeAestheticScore);
        }
        if (o.PromptEmbeds is { } given)
        {
            using var scope = NewDisposeScope();
            Tensor Rows(Tensor t) => t.to(_dtype).to(_device).repeat_interleave(o.NumImagesPerPrompt, 0);
            var negative = o.NegativePromptEmbeds is { } ne ? (Rows(ne), Rows(o.NegativePooledPromptEmbeds!)) : ((Tensor, Tensor)?)null;
            var conditioning = XLPromptEncoder.FromEmbeddings(Rows(given), Rows(o.PooledPromptEmbeds!), negative,
                o.HasNegativePrompt ? batch.Each(o.NegativePromptFor) : null, guided, o.ClipSkip, size, negativeSize);
            conditioning.EncoderHiddenStates.MoveToOuterDisposeScope(); // out of this scope: the caller disposes the conditioning
            conditioning.Pooled!.MoveToOuterDisposeScope();
            conditioning.TimeIds!.MoveToOuterDisposeScope();
            return conditioning;
        }
        if (o.PromptSyntax == PromptSyntax.A1111)
            return XLPromptEncoder.EncodeConditioningA1111(prompts, batch.Each(o.NegativePromptFor), guided, o.ClipSkip, size, negativeSize);
        return XLPromptEncoder.EncodeConditioning(prompts, batch.Each(o.Prompt2For),
            o.HasNegativePrompt ? batch.Each(o.NegativePromptFor) : null, o.HasNegativePrompt ? batch.Each(o.NegativePrompt2For) : null,
            guided, o.ClipSkip, size, negativeSize, warnings);
    }

    public IReadOnlyList<string> LoadTextualInversion(string path, string? token = null) =>
        TextualInversion.Load(path, token, _weights1 is null ? [(Tokenizer2, _weights2)] : [(Tokenizer, _weights1), (Tokenizer2, _weights2)]);
}
