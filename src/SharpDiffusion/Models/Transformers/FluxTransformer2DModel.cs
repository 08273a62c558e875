using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpDiffusion.Models.Transformers;

/// <summary>One call of the Flux transformer, named as diffusers' forward arguments.</summary>
/// <param name="HiddenStates">packed latents [B, N, in_channels]: each token a 2×2 patch of the 16-channel latent.</param>
/// <param name="Timestep">[B] σ as the pipeline passes it (t/1000); the model multiplies by 1000 again.</param>
/// <param name="EncoderHiddenStates">T5 tokens [B, M, joint_attention_dim].</param>
/// <param name="PooledProjections">CLIP-L's pooled output [B, pooled_projection_dim].</param>
/// <param name="ImgIds">[N, 3] (0, row, column) of each image token.</param>
/// <param name="TxtIds">[M, 3] zeros.</param>
/// <param name="Guidance">[B] the guidance scale (dev, guidance_embeds); null for schnell.</param>
public sealed record FluxTransformer2DInput(Tensor HiddenStates, Tensor Timestep, Tensor EncoderHiddenStates, Tensor PooledProjections,
    Tensor ImgIds, Tensor TxtIds, Tensor? Guidance = null);

/// <summary>
/// diffusers' FluxTransformer2DModel (Flux.1 dev and schnell): the packed image tokens (x_embedder) and T5's tokens
/// (context_embedder) run through double blocks side by side, then joined [text | image] through single blocks, every
/// block modulated by one conditioning vector of t (and, for dev, the guidance scale) and CLIP's pooled text
/// (time_text_embed), every attention turned by rotary positions of the tokens' ids (pos_embed). The image tokens are
/// then modulated (norm_out) and projected back to in_channels each (proj_out). Module names are diffusers' state-dict keys.
/// </summary>
public sealed class FluxTransformer2DModel : Module
{
    readonly FluxPosEmbed _posEmbed;
    readonly Module _timeTextEmbed;
    readonly Linear _contextEmbedder, _xEmbedder, _projOut;
    readonly ModuleList<FluxTransformerBlock> _blocks;
    readonly ModuleList<FluxSingleTransformerBlock> _singleBlocks;
    readonly AdaLayerNormContinuous _normOut;

    public FluxTransformer2DConfig Config { get; }

    public FluxTransformer2DModel(FluxTransformer2DConfig config) : base(nameof(FluxTransformer2DModel))
    {
        Config = config;
        var c = config;
        int dim = c.InnerDim;
        _posEmbed = new FluxPosEmbed(c.AxesDimsRope);
        _timeTextEmbed = c.GuidanceEmbeds
            ? new CombinedTimestepGuidanceTextProjEmbeddings(dim, c.PooledProjectionDim)
            : new CombinedTimestepTextProjEmbeddings(dim, c.PooledProjectionDim);
        _contextEmbedder = Layers.CompactLinear(c.JointAttentionDim, dim);
        _xEmbedder = Layers.CompactLinear(c.InChannels, dim);
        _blocks = new ModuleList<FluxTransformerBlock>(Enumerable.Range(0, c.NumLayers)
            .Select(_ => new FluxTransformerBlock(dim, c.NumAttentionHeads, c.AttentionHeadDim)).ToArray());
        _singleBlocks = new ModuleList<FluxSingleTransformerBlock>(Enumerable.Range(0, c.NumSingleLayers)
            .Select(_ => new FluxSingleTransformerBlock(dim, c.NumAttentionHeads, c.AttentionHeadDim)).ToArray());
        _normOut = new AdaLayerNormContinuous(dim, dim);
        _projOut = Layers.CompactLinear(dim, c.PatchSize * c.PatchSize * c.OutChannels);
        register_module("time_text_embed", _timeTextEmbed);
        register_module("context_embedder", _contextEmbedder);
        register_module("x_embedder", _xEmbedder);
        register_module("transformer_blocks", _blocks);
        register_module("single_transformer_blocks", _singleBlocks);
        register_module("norm_out", _normOut);
        register_module("proj_out", _projOut);
    }

    /// <summary>Sets the kernel of every attention (the loader does, from <see cref="Loading.LoadOptions.Attention"/>).</summary>
    public void UseAttentionKernel(AttentionKernelChoice? choice)
    {
        foreach (var attention in modules().OfType<FluxAttention>()) attention.KernelChoice = choice;
    }

    /// <returns>the prediction [B, N, in_channels] (flow matching: the velocity of each packed token).</returns>
    public Tensor Forward(FluxTransformer2DInput input)
    {
        Validate(input);
        using var scope = NewDisposeScope();
        var dtype = input.HiddenStates.dtype;
        var hidden = _xEmbedder.call(input.HiddenStates);                                  // [B, N, D]
        var t = input.Timestep.to(dtype) * 1000;                                            // back to σ·1000, in the model dtype
        var temb = input.Guidance is { } g && _timeTextEmbed is CombinedTimestepGuidanceTextProjEmbeddings withGuidance
            ? withGuidance.call(t, g.to(dtype) * 1000, input.PooledProjections)
            : ((CombinedTimestepTextProjEmbeddings)_timeTextEmbed).call(t, input.PooledProjections); // [B, D]
        var context = _contextEmbedder.call(input.EncoderHiddenStates);                     // [B, M, D]
        var rotary = _posEmbed.Forward(cat([input.TxtIds, input.ImgIds], 0));               // [M + N, d] each

        foreach (var block in _blocks)
        {
            var (nextHidden, nextContext) = block.Forward(hidden, context, temb, rotary);
            hidden.Dispose();
            context.Dispose();
            (hidden, context) = (nextHidden, nextContext);
        }
        long m = context.shape[1];
        hidden = cat([context, hidden], 1);                                                 // [B, M + N, D]
        foreach (var block in _singleBlocks)
        {
            var next = block.Forward(hidden, temb, rotary);
            hidden.Dispose();
            hidden = next;
        }
        hidden = hidden.narrow(1, m, hidden.shape[1] - m);                                 // the image tokens [B, N, D]
        return _projOut.call(_normOut.call(hidden, temb)).MoveToOuterDisposeScope();     // [B, N, in_channels]
    }

    void Validate(FluxTransformer2DInput input)
    {
        var c = Config;
        var (x, t, text, pooled, imgIds, txtIds, guidance) = input;
        if (x.dim() != 3 || x.shape[2] != c.InChannels)
            throw new ArgumentException($"Flux transformer hidden_states must be packed [B, N, {c.InChannels}], got {Shape(x)}");
        long b = x.shape[0], n = x.shape[1];
        if (t.dim() != 1 || t.shape[0] != b)
            throw new ArgumentException($"Flux transformer timestep must be [{b}], got {Shape(t)}");
        if (text.dim() != 3 || text.shape[0] != b || text.shape[2] != c.JointAttentionDim)
            throw new ArgumentException($"Flux transformer encoder_hidden_states must be [{b}, M, {c.JointAttentionDim}], got {Shape(text)}: is the T5 the model's?");
        if (pooled.dim() != 2 || pooled.shape[0] != b || pooled.shape[1] != c.PooledProjectionDim)
            throw new ArgumentException($"Flux transformer pooled_projections must be [{b}, {c.PooledProjectionDim}], got {Shape(pooled)}");
        int axes = c.AxesDimsRope.Length;
        if (imgIds.dim() != 2 || imgIds.shape[0] != n || imgIds.shape[1] != axes)
            throw new ArgumentException($"Flux transformer img_ids must be [{n}, {axes}], got {Shape(imgIds)}");
        if (txtIds.dim() != 2 || txtIds.shape[0] != text.shape[1] || txtIds.shape[1] != axes)
            throw new ArgumentException($"Flux transformer txt_ids must be [{text.shape[1]}, {axes}], got {Shape(txtIds)}");
        if (c.GuidanceEmbeds && (guidance is null || guidance.dim() != 1 || guidance.shape[0] != b))
            throw new ArgumentException($"This Flux transformer embeds the guidance scale (guidance_embeds, Flux.1 dev): guidance must be [{b}], got {(guidance is null ? "none" : Shape(guidance))}");
    }

    static string Shape(Tensor t) => $"[{string.Join(", ", t.shape)}]";
}
