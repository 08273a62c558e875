using SharpDiffusion.Conditioning;
using SharpDiffusion.Families.StableDiffusion;
using SharpDiffusion.Loading;
using SharpDiffusion.Models.Clip;
using SharpDiffusion.Models.UNet;
using SharpDiffusion.Models.Vae;
using SharpDiffusion.Text;
using static TorchSharp.torch;

namespace SharpDiffusion.Pipelines;

/// <summary>The SD 1.x/2.x/XL components by their diffusers names, for callers that run one directly (benchmarks, tests,
/// the trainer's evaluation). They belong to the family's parts: <see cref="StableDiffusionPipeline.Conditioner"/>,
/// <see cref="StableDiffusionPipeline.Denoiser"/>, <see cref="StableDiffusionPipeline.VaeCodec"/>.</summary>
public sealed partial class StableDiffusionPipeline
{
    /// <summary>Where the components' weights are: resident, or read only while each runs (<see cref="LoadOptions.LowMemory"/>).
    /// Code outside the pipeline that runs a component directly holds a <see cref="ComponentWeights.Use"/> meanwhile.</summary>
    public PipelineWeights Weights => new(Conditioner.Encoders[0], Denoiser.Weights, VaeCodec.Weights, Conditioner.Encoders.ElementAtOrDefault(1));

    public ClipTokenizer Tokenizer => Conditioner switch
    {
        ClipTextConditioner c => c.Tokenizer,
        SdxlTextConditioner x => x.Tokenizer,
        _ => throw new NotSupportedException($"A {Family} model has no CLIP tokenizer of SD's."),
    };
    public ClipTextModel TextEncoder => (ClipTextModel)Weights.TextEncoder.Module;
    public UNet2DConditionModel Unet => ((UNetDenoiser)Denoiser).Unet;
    public AutoencoderKL Vae => VaeCodec.Model;
    /// <summary>The first text encoder's prompt encoder (plain and AUTOMATIC1111 syntax).</summary>
    public PromptEncoder PromptEncoder => Conditioner switch
    {
        ClipTextConditioner c => c.PromptEncoder,
        SdxlTextConditioner x => x.PromptEncoder,
        _ => throw new NotSupportedException($"A {Family} model has no CLIP prompt encoder of SD's."),
    };
    /// <summary>SDXL's second tokenizer and text encoder (CLIPTextModelWithProjection); null for SD 1.x/2.x.</summary>
    public ClipTokenizer? Tokenizer2 => (Conditioner as SdxlTextConditioner)?.Tokenizer2;
    public ClipTextModel? TextEncoder2 => (Conditioner as SdxlTextConditioner)?.TextEncoder2;
    /// <summary>SDXL: encodes both encoders' prompts, the pooled embedding and the size/crop time ids.</summary>
    public SdxlPromptEncoder? XLPromptEncoder => (Conditioner as SdxlTextConditioner)?.XLPromptEncoder;
    /// <summary>An SDXL model (two text encoders, the UNet's text_time embedding).</summary>
    public bool IsXL => Family is StableDiffusionXLFamily;
    /// <summary>The VAE's dtype: float32 when a float16 model's VAE must be upcast (force_upcast).</summary>
    public ScalarType VaeDType => VaeCodec.DType;
    public int VaeScaleFactor => LatentFormat.SpatialFactor;

    /// <summary>Token ids [B, 77] int64 on the CPU.</summary>
    public Tensor TokenIds(IReadOnlyList<string> texts) => Tokenizer.EncodeBatch(texts.Select(Tokenizer.ExpandMultiVectorTokens).ToList());

    /// <summary>Text → last_hidden_state [B, 77, D] in the model dtype (plain syntax, diffusers).</summary>
    public Tensor EncodePrompt(IReadOnlyList<string> texts)
    {
        using var use = Components.UseTextEncoders();
        return PromptEncoder.EncodePlain(texts);
    }
}
