using SharpDiffusion.Loading;
using SharpDiffusion.Loading.SingleFile;
using SharpDiffusion.Models.ControlNet;
using SharpDiffusion.Models.UNet;
using SharpDiffusion.Pipelines;
using static TorchSharp.torch;

namespace SharpDiffusion.Families.StableDiffusion;

/// <summary>
/// SD 1.x/2.x/XL's denoiser: <see cref="UNet2DConditionModel"/> in the compute dtype, guidance batched [uncond; cond],
/// with DeepCache (<see cref="GenerationOptions.DeepCacheInterval"/>) and the call's ControlNets
/// (<see cref="GenerationOptions.ControlNets"/>, <see cref="ControlNetRun"/>) as per-run state.
/// </summary>
public sealed class UNetDenoiser(ComponentWeights weights, ScalarType dtype) : IDenoiser
{
    public UNet2DConditionModel Unet => (UNet2DConditionModel)weights.Module;
    public ComponentWeights Weights => weights;
    public bool BatchesGuidance => true;
    public long InChannels => Unet.Config.InChannels;
    public int DefaultSampleSize => Unet.Config.SampleSize ?? 64;
    public long FullResolutionChannels => Unet.Config.BlockOutChannels[0];

    /// <summary>An LCM-distilled UNet (time_cond_proj_dim) takes the guidance scale as an embedding of w = g − 1 and runs
    /// no CFG batch, as diffusers' pipelines do (do_classifier_free_guidance is off when the UNet has time_cond_proj_dim).</summary>
    public GuidanceSettings Guidance(GenerationOptions options) => Unet.Config.TimeCondProjDim > 0
        ? new GuidanceSettings(1.0)
        : new GuidanceSettings(options.GuidanceScale, options.GuidanceRescale);

    public void Validate(GenerationOptions o)
    {
        var c = Unet.Config;
        if (o.Task == GenerationTask.Inpainting && c.InChannels is not (4 or 9))
            throw new NotSupportedException($"Inpainting needs a UNet with 9 input channels (an inpainting model) or 4; this one has {c.InChannels}.");
        if (o.Task != GenerationTask.Inpainting && c.InChannels != 4)
            throw new ArgumentException($"This is an inpainting model (UNet in_channels {c.InChannels}): give an image and a mask.");
        if (c.AdditionEmbedType == "text_time" && o.PooledPromptEmbeds is { } pooled && pooled.shape[1] != c.PooledTextDim)
            throw new ArgumentException($"Pooled prompt embeddings have {pooled.shape[1]} channels; this SDXL model takes {c.PooledTextDim}.");
        if (o.PromptEmbeds is { } pe && pe.shape[2] != c.CrossAttentionDim[0])
            throw new ArgumentException($"Prompt embeddings have {pe.shape[2]} channels; this model's UNet takes {c.CrossAttentionDim[0]}.");
        if (o.ControlNets.Count > 0 && o.DeepCacheInterval > 1)
            throw new NotSupportedException("DeepCache skips the UNet blocks a ControlNet feeds: use a DeepCache interval of 1 with ControlNets.");
        for (int i = 0; i < o.ControlNets.Count; i++)
        {
            var unit = o.ControlNets[i];
            unit.Validate(i);
            var config = unit.Model?.Config ?? ControlNetLoader.ReadConfig(unit.ModelPath!, c);
            RefuseMismatch(config, unit.ModelPath ?? $"ControlNet {i + 1}");
        }
    }

    /// <summary>A ControlNet is made from one UNet: the same text width, added embedding, latent channels and skip channels.</summary>
    void RefuseMismatch(ControlNetModelConfig controlNet, string name)
    {
        var c = Unet.Config;
        var n = controlNet.Unet;
        bool sameFamily = n.AdditionEmbedType == c.AdditionEmbedType && n.CrossAttentionDim[0] == c.CrossAttentionDim[0];
        if (!sameFamily)
            throw new ArgumentException($"{name} is a ControlNet for {Family(n)}, but this model is {Family(c)}: use a ControlNet made for this model.");
        if (n.InChannels != c.OutChannels || !controlNet.ResidualChannels.SequenceEqual(SkipChannels(c)) || n.BlockOutChannels[^1] != c.BlockOutChannels[^1])
            throw new ArgumentException($"{name} does not fit this UNet: its residuals have channels [{string.Join(", ", controlNet.ResidualChannels)}], " +
                $"the UNet's skips [{string.Join(", ", SkipChannels(c))}]; use a ControlNet made for this model.");
    }

    static IEnumerable<int> SkipChannels(UNet2DConditionConfig c) =>
        new ControlNetModelConfig { Unet = c }.ResidualChannels;

    static string Family(UNet2DConditionConfig c) =>
        c.AdditionEmbedType == "text_time" ? $"SDXL (cross_attention_dim {c.CrossAttentionDim[0]}, text_time)"
        : c.CrossAttentionDim[0] switch
        {
            768 => "SD 1.x (cross_attention_dim 768)",
            1024 => "SD 2.x (cross_attention_dim 1024)",
            var d => $"an SD 1.x/2.x-style UNet with cross_attention_dim {d}",
        };

    public IDenoiserRun Start(GenerationOptions options)
    {
        var cache = options.DeepCacheInterval > 1 ? new DeepFeatureCache(options.DeepCacheInterval) : null;
        double? w = Unet.Config.TimeCondProjDim > 0 ? options.GuidanceScale - 1 : null;
        if (options.ControlNets.Count == 0)
            return new Run(Unet, dtype, cache, null, w);
        var device = Unet.parameters().First().device;
        var load = new LoadOptions { DType = dtype, Device = device.ToString() };
        var controlNets = new ControlNetRun(options.ControlNets, path => ControlNetLoader.Load(path, load, Unet.Config),
            new GuidanceSettings(options.GuidanceScale).Enabled, dtype, options.Tiling);
        return new Run(Unet, dtype, cache, controlNets, w);
    }

    /// <param name="w">An LCM UNet's guidance w = g − 1, given to it as timestep_cond (diffusers' get_guidance_scale_embedding).</param>
    sealed class Run(UNet2DConditionModel unet, ScalarType dtype, DeepFeatureCache? cache, ControlNetRun? controlNets, double? w) : IDenoiserRun
    {
        public Tensor Predict(DenoiserInput input)
        {
            using var scope = NewDisposeScope();
            using var residuals = controlNets?.Residuals(input);
            var conditioning = w is double scale
                ? input.Conditioning with
                {
                    TimestepCond = GuidanceScaleEmbedding.Embed(full([input.HiddenStates.shape[0]], scale, dtype: ScalarType.Float32), unet.Config.TimeCondProjDim)
                        .to(dtype).to(input.HiddenStates.device),                                         // [B, time_cond_proj_dim]
                }
                : input.Conditioning;
            var output = unet.Forward(input.HiddenStates.to(dtype), input.Timestep, conditioning, cache, cache?.CanReuse(input.Step) ?? false, residuals);
            return output.to(ScalarType.Float32).MoveToOuterDisposeScope();
        }

        public void Dispose()
        {
            cache?.Dispose();
            controlNets?.Dispose();
        }
    }
}
