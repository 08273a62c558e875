using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpDiffusion.Models.Transformers;

/// <summary>One call of the SD3 transformer, named as diffusers' forward arguments.</summary>
/// <param name="HiddenStates">latents [B, in_channels, H, W].</param>
/// <param name="Timestep">[B] float timesteps (flow matching: σ·1000), or a 0-d tensor for the whole batch.</param>
/// <param name="EncoderHiddenStates">text tokens [B, T, joint_attention_dim] (CLIP-L ‖ bigG padded, then T5).</param>
/// <param name="PooledProjections">[B, pooled_projection_dim] (CLIP-L ‖ bigG pooled).</param>
public sealed record SD3Transformer2DInput(Tensor HiddenStates, Tensor Timestep, Tensor EncoderHiddenStates, Tensor PooledProjections);

/// <summary>
/// diffusers' SD3Transformer2DModel (MMDiT; SD3, SD3.5 Large and, with dual attention, SD3.5 Medium): the latent is cut into
/// p×p patches plus a position table (pos_embed), the text tokens are projected to the same width (context_embedder), and
/// both streams run through joint blocks conditioned on t and the pooled text (time_text_embed); the image stream is then
/// modulated (norm_out), projected to p·p·C values per patch (proj_out) and folded back into [B, C, H, W].
/// Module names are diffusers' state-dict keys.
/// </summary>
public sealed class SD3Transformer2DModel : Module
{
    readonly PatchEmbed _posEmbed;
    readonly CombinedTimestepTextProjEmbeddings _timeTextEmbed;
    readonly Linear _contextEmbedder, _projOut;
    readonly ModuleList<JointTransformerBlock> _blocks;
    readonly AdaLayerNormContinuous _normOut;

    public SD3Transformer2DConfig Config { get; }

    public SD3Transformer2DModel(SD3Transformer2DConfig config) : base(nameof(SD3Transformer2DModel))
    {
        Config = config;
        var c = config;
        int dim = c.InnerDim;
        _posEmbed = new PatchEmbed(c.PatchSize, c.InChannels, dim, c.PosEmbedMaxSize);
        _timeTextEmbed = new CombinedTimestepTextProjEmbeddings(dim, c.PooledProjectionDim);
        _contextEmbedder = Layers.CompactLinear(c.JointAttentionDim, c.CaptionProjectionDim);
        _blocks = new ModuleList<JointTransformerBlock>(Enumerable.Range(0, c.NumLayers)
            .Select(i => new JointTransformerBlock(dim, c.NumAttentionHeads, c.AttentionHeadDim, contextPreOnly: i == c.NumLayers - 1,
                qkRmsNorm: c.QkNorm == "rms_norm", dualAttention: c.DualAttentionLayers.Contains(i))).ToArray());
        _normOut = new AdaLayerNormContinuous(dim, dim);
        _projOut = Layers.CompactLinear(dim, c.PatchSize * c.PatchSize * c.OutChannels);
        register_module("pos_embed", _posEmbed);
        register_module("time_text_embed", _timeTextEmbed);
        register_module("context_embedder", _contextEmbedder);
        register_module("transformer_blocks", _blocks);
        register_module("norm_out", _normOut);
        register_module("proj_out", _projOut);
    }

    /// <summary>Sets the kernel of every attention (the loader does, from <see cref="Loading.LoadOptions.Attention"/>).</summary>
    public void UseAttentionKernel(AttentionKernelChoice? choice)
    {
        foreach (var attention in modules().OfType<JointAttention>()) attention.KernelChoice = choice;
    }

    /// <returns>the prediction [B, out_channels, H, W] (flow matching: the velocity).</returns>
    public Tensor Forward(SD3Transformer2DInput input)
    {
        var (latent, timestep, text, pooled) = input;
        Validate(latent, timestep, text, pooled);
        using var scope = NewDisposeScope();
        long batch = latent.shape[0], p = Config.PatchSize, h = latent.shape[2] / p, w = latent.shape[3] / p;
        var t = (timestep.dim() == 0 ? timestep.expand(batch) : timestep).to(latent.device);

        var hidden = _posEmbed.call(latent);              // [B, h·w, D]
        var temb = _timeTextEmbed.call(t, pooled);        // [B, D]
        Tensor? context = _contextEmbedder.call(text);    // [B, T, D]
        foreach (var block in _blocks)
        {
            var (nextHidden, nextContext) = block.Forward(hidden, context!, temb);
            // Each block's streams go as soon as the next exist: at 1024² with CFG, SD3 Medium's are ~54 MB in float32,
            // and 24 blocks' worth would otherwise stay until the end of the call.
            hidden.Dispose();
            context!.Dispose();
            (hidden, context) = (nextHidden, nextContext);
        }

        hidden = _projOut.call(_normOut.call(hidden, temb));           // [B, h·w, p·p·C]
        // "nhwpqc -> nchpwq": each token's p×p×C values back to its patch.
        var patches = hidden.reshape(batch, h, w, p, p, Config.OutChannels).permute(0, 5, 1, 3, 2, 4);
        return patches.reshape(batch, Config.OutChannels, h * p, w * p).MoveToOuterDisposeScope();
    }

    void Validate(Tensor latent, Tensor timestep, Tensor text, Tensor pooled)
    {
        var c = Config;
        if (latent.dim() != 4 || latent.shape[1] != c.InChannels)
            throw new ArgumentException($"SD3 transformer hidden_states must be [B, {c.InChannels}, H, W], got {Shape(latent)}");
        long b = latent.shape[0], height = latent.shape[2], width = latent.shape[3];
        if (height % c.PatchSize != 0 || width % c.PatchSize != 0)
            throw new ArgumentException($"SD3 transformer latent {width}x{height} is not a multiple of patch_size {c.PatchSize}; " +
                $"use an image size that is a multiple of {c.PatchSize} × the VAE factor");
        long max = (long)c.PosEmbedMaxSize * c.PatchSize;
        if (height > max || width > max)
            throw new ArgumentException($"SD3 transformer latent {width}x{height} is larger than pos_embed_max_size × patch_size = {max} a side; use a smaller image");
        if (timestep.dim() > 1 || (timestep.dim() == 1 && timestep.shape[0] != b))
            throw new ArgumentException($"SD3 transformer timestep must be one value or [{b}], got {Shape(timestep)}");
        if (text.dim() != 3 || text.shape[0] != b || text.shape[2] != c.JointAttentionDim)
            throw new ArgumentException($"SD3 transformer encoder_hidden_states must be [{b}, T, {c.JointAttentionDim}], got {Shape(text)}");
        if (pooled.dim() != 2 || pooled.shape[0] != b || pooled.shape[1] != c.PooledProjectionDim)
            throw new ArgumentException($"SD3 transformer pooled_projections must be [{b}, {c.PooledProjectionDim}], got {Shape(pooled)}");
    }

    static string Shape(Tensor t) => $"[{string.Join(", ", t.shape)}]";
}
