using SharpDiffusion.Configuration;
using SharpDiffusion.Models.UNet;

namespace SharpDiffusion.Models.Transformers;

/// <summary>diffusers' FluxTransformer2DModel config keys with their defaults (Flux.1 dev/schnell's sizes).</summary>
public sealed record FluxTransformer2DConfig
{
    public int PatchSize { get; init; } = 1;
    /// <summary>Channels of a packed token: the VAE's 16 latent channels × a 2×2 patch.</summary>
    public int InChannels { get; init; } = 64;
    /// <summary>Double-stream (MMDiT) blocks.</summary>
    public int NumLayers { get; init; } = 19;
    /// <summary>Single-stream blocks over [text | image].</summary>
    public int NumSingleLayers { get; init; } = 38;
    public int AttentionHeadDim { get; init; } = 128;
    public int NumAttentionHeads { get; init; } = 24;
    /// <summary>T5's width (d_model).</summary>
    public int JointAttentionDim { get; init; } = 4096;
    /// <summary>CLIP-L's pooled width.</summary>
    public int PooledProjectionDim { get; init; } = 768;
    /// <summary>dev: the guidance scale is an input embedded like the timestep (guidance distillation); schnell: none.</summary>
    public bool GuidanceEmbeds { get; init; }
    /// <summary>Rotary channels per position axis (text/index, row, column); they sum to the head size.</summary>
    public int[] AxesDimsRope { get; init; } = [16, 56, 56];

    /// <summary>The width of every token: heads × head size.</summary>
    public int InnerDim => NumAttentionHeads * AttentionHeadDim;
    /// <summary>diffusers 0.31 has no out_channels: the output is as wide as the input.</summary>
    public int OutChannels => InChannels;

    /// <summary>Reads and validates every key before anything is built; what this port does not do is refused in one line.</summary>
    public static FluxTransformer2DConfig From(JsonConfig c)
    {
        var d = new FluxTransformer2DConfig();
        const int maxChannels = UNet2DConditionConfig.MaxChannels;
        int heads = c.GetInt("num_attention_heads", d.NumAttentionHeads, 1, 1024);
        int headDim = c.GetInt("attention_head_dim", d.AttentionHeadDim, 2, 1024);
        if ((long)heads * headDim > maxChannels)
            throw c.Invalid("num_attention_heads", heads, $"heads × attention_head_dim ({heads} × {headDim}) must be at most {maxChannels}");
        var axes = c.GetIntArray("axes_dims_rope", d.AxesDimsRope, 2, 1024);
        if (axes.Length == 0 || axes.Any(a => a % 2 != 0) || axes.Sum() != headDim)
            throw c.Invalid("axes_dims_rope", $"[{string.Join(",", axes)}]", $"each axis must be even and they must sum to attention_head_dim {headDim}");
        int patch = c.GetInt("patch_size", d.PatchSize, 1, 64);
        if (patch != 1)
            throw c.Invalid("patch_size", patch, "Flux packs 2×2 latent patches itself; the transformer's patch_size must be 1");
        return new FluxTransformer2DConfig
        {
            PatchSize = patch,
            InChannels = c.GetInt("in_channels", d.InChannels, 1, maxChannels),
            NumLayers = c.GetInt("num_layers", d.NumLayers, 0, 1000),
            NumSingleLayers = c.GetInt("num_single_layers", d.NumSingleLayers, 0, 1000),
            AttentionHeadDim = headDim,
            NumAttentionHeads = heads,
            JointAttentionDim = c.GetInt("joint_attention_dim", d.JointAttentionDim, 1, maxChannels),
            PooledProjectionDim = c.GetInt("pooled_projection_dim", d.PooledProjectionDim, 1, maxChannels),
            GuidanceEmbeds = c.GetBool("guidance_embeds", d.GuidanceEmbeds),
            AxesDimsRope = axes,
        };
    }

    /// <summary>A lower bound on the parameter count: a double block's projections, modulations and feed-forwards (24·D²)
    /// and a single block's (15·D²), so a config far larger than its weights is refused before anything is built.</summary>
    public double MinimumParameterCount() => (NumLayers * 24.0 + NumSingleLayers * 15.0) * InnerDim * InnerDim;
}
