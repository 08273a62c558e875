using SharpDiffusion.Models.UNet;

namespace SharpDiffusion.Loading.SingleFile;

/// <summary>
/// The original LDM/CompVis names of every diffusers parameter, written once as tables of name prefixes (as diffusers'
/// scripts/convert_diffusers_to_original_stable_diffusion.py does, generalised to any number of levels and layers per
/// block). Each table maps a diffusers prefix to an LDM prefix, optionally with a table for the first part of what
/// follows (a resnet's <c>norm1</c> is <c>in_layers.0</c>). Loading runs it backwards: the names of the model we build
/// are mapped to LDM names once, and the inverse dictionary renames the checkpoint's keys.
/// </summary>
public static class LdmKeyMap
{
    public const string UNetPrefix = "model.diffusion_model.";
    public const string VaePrefix = "first_stage_model.";
    /// <summary>SD 1.x: transformers' CLIPTextModel names under this prefix.</summary>
    public const string ClipPrefix = "cond_stage_model.transformer.";
    /// <summary>SD 2.x: OpenCLIP's names (resblocks, fused in_proj) under this prefix.</summary>
    public const string OpenClipPrefix = "cond_stage_model.model.";
    /// <summary>SDXL: its first text encoder (CLIP ViT-L), transformers' names under this prefix.</summary>
    public const string XLClipPrefix = "conditioner.embedders.0.transformer.";
    /// <summary>SDXL: its second text encoder (OpenCLIP bigG, projected) under this prefix.</summary>
    public const string XLOpenClipPrefix = "conditioner.embedders.1.model.";
    /// <summary>The SDXL refiner: its only text encoder (OpenCLIP bigG, projected) under this prefix.</summary>
    public const string XLRefinerOpenClipPrefix = "conditioner.embedders.0.model.";
    /// <summary>A tensor stored transposed (OpenCLIP's text_projection [width, proj] = transformers' weightᵀ), as
    /// <see cref="TransposedFile"/> presents it: <c>…text_projection#T</c>.</summary>
    public const string TransposedSuffix = "#T";
    /// <summary>Pickled checkpoints wrap the weights in {"state_dict": …}; a reader may keep that level in the names.</summary>
    public const string StateDictPrefix = "state_dict.";
    /// <summary>One part of a fused OpenCLIP attention projection (<c>in_proj_weight</c> = cat(q, k, v)), as
    /// <see cref="FusedQkvSplitFile"/> presents it: <c>…attn.in_proj_weight#q</c>.</summary>
    public const char PartSeparator = '#';

    sealed record Rule(string Diffusers, string Ldm, (string Diffusers, string Ldm)[]? Inner = null);

    static readonly (string, string)[] UNetResnet =
    [
        ("norm1.", "in_layers.0."), ("conv1.", "in_layers.2."), ("time_emb_proj.", "emb_layers.1."),
        ("norm2.", "out_layers.0."), ("conv2.", "out_layers.3."), ("conv_shortcut.", "skip_connection."),
    ];

    static readonly (string, string)[] VaeResnet = [("conv_shortcut.", "nin_shortcut.")];

    static readonly (string, string)[] VaeAttention =
        [("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."), ("to_out.0.", "proj_out.")];

    /// <summary>OpenCLIP text transformer (diffusers → LDM) below the prefix; q/k/v are parts of the fused projection.</summary>
    static readonly (string, string)[] OpenClipLayer =
    [
        ("layer_norm1.", "ln_1."), ("layer_norm2.", "ln_2."), ("self_attn.out_proj.", "attn.out_proj."),
        ("self_attn.q_proj.weight", "attn.in_proj_weight#q"), ("self_attn.k_proj.weight", "attn.in_proj_weight#k"), ("self_attn.v_proj.weight", "attn.in_proj_weight#v"),
        ("self_attn.q_proj.bias", "attn.in_proj_bias#q"), ("self_attn.k_proj.bias", "attn.in_proj_bias#k"), ("self_attn.v_proj.bias", "attn.in_proj_bias#v"),
        ("mlp.fc1.", "mlp.c_fc."), ("mlp.fc2.", "mlp.c_proj."),
    ];

    static IEnumerable<Rule> UNetRules(UNet2DConditionConfig c)
    {
        yield return new("time_embedding.linear_1.", "time_embed.0.");
        yield return new("time_embedding.linear_2.", "time_embed.2.");
        yield return new("add_embedding.linear_1.", "label_emb.0.0.");  // SDXL text_time
        yield return new("add_embedding.linear_2.", "label_emb.0.2.");
        yield return new("conv_in.", "input_blocks.0.0.");
        yield return new("conv_norm_out.", "out.0.");
        yield return new("conv_out.", "out.2.");
        int levels = c.BlockOutChannels.Length;
        int input = 1; // input_blocks.0 is conv_in; then L resnets (+ attention) and a downsampler per level
        for (int i = 0; i < levels; i++)
        {
            for (int j = 0; j < c.LayersPerBlock[i]; j++, input++)
            {
                yield return new($"down_blocks.{i}.resnets.{j}.", $"input_blocks.{input}.0.", UNetResnet);
                yield return new($"down_blocks.{i}.attentions.{j}.", $"input_blocks.{input}.1.");
            }
            if (i < levels - 1)
                yield return new($"down_blocks.{i}.downsamplers.0.conv.", $"input_blocks.{input++}.0.op.");
        }
        yield return new("mid_block.resnets.0.", "middle_block.0.", UNetResnet);
        yield return new("mid_block.attentions.0.", "middle_block.1.");
        yield return new("mid_block.resnets.1.", "middle_block.2.", UNetResnet);
        int output = 0; // up block i mirrors level n-1-i with L+1 resnets; its upsampler follows the last one's attention
        for (int i = 0; i < levels; i++)
        {
            int resnets = c.LayersPerBlock[levels - 1 - i] + 1;
            for (int j = 0; j < resnets; j++, output++)
            {
                yield return new($"up_blocks.{i}.resnets.{j}.", $"output_blocks.{output}.0.", UNetResnet);
                yield return new($"up_blocks.{i}.attentions.{j}.", $"output_blocks.{output}.1.");
            }
            if (i < levels - 1)
                yield return new($"up_blocks.{i}.upsamplers.0.conv.",
                    $"output_blocks.{output - 1}.{(c.UpBlockTypes[i] == "CrossAttnUpBlock2D" ? 2 : 1)}.conv.");
        }
    }

    static IEnumerable<Rule> VaeRules(int levels, int layersPerBlock)
    {
        for (int i = 0; i < levels; i++)
        {
            for (int j = 0; j < layersPerBlock; j++)
                yield return new($"encoder.down_blocks.{i}.resnets.{j}.", $"encoder.down.{i}.block.{j}.", VaeResnet);
            yield return new($"encoder.down_blocks.{i}.downsamplers.0.", $"encoder.down.{i}.downsample.");
            for (int j = 0; j < layersPerBlock + 1; j++)
                yield return new($"decoder.up_blocks.{i}.resnets.{j}.", $"decoder.up.{levels - 1 - i}.block.{j}.", VaeResnet);
            yield return new($"decoder.up_blocks.{i}.upsamplers.0.", $"decoder.up.{levels - 1 - i}.upsample.");
        }
        foreach (string part in (string[])["encoder", "decoder"])
        {
            yield return new($"{part}.mid_block.resnets.0.", $"{part}.mid.block_1.", VaeResnet);
            yield return new($"{part}.mid_block.resnets.1.", $"{part}.mid.block_2.", VaeResnet);
            yield return new($"{part}.mid_block.attentions.0.", $"{part}.mid.attn_1.", VaeAttention);
            yield return new($"{part}.conv_norm_out.", $"{part}.norm_out.");
        }
    }

    static IEnumerable<Rule> OpenClipRules(int layers)
    {
        yield return new("text_model.embeddings.token_embedding.weight", "token_embedding.weight");
        yield return new("text_model.embeddings.position_embedding.weight", "positional_embedding");
        yield return new("text_model.final_layer_norm.", "ln_final.");
        yield return new("text_projection.weight", "text_projection" + TransposedSuffix);
        for (int i = 0; i < layers; i++)
            yield return new($"text_model.encoder.layers.{i}.", $"transformer.resblocks.{i}.", OpenClipLayer);
    }

    /// <summary>The LDM key (with the component prefix) of each diffusers UNet parameter name.</summary>
    public static Dictionary<string, string> UNet(IEnumerable<string> names, UNet2DConditionConfig config) =>
        Map(names, UNetRules(config).ToList(), UNetPrefix);

    public static Dictionary<string, string> Vae(IEnumerable<string> names, int levels, int layersPerBlock) =>
        Map(names, VaeRules(levels, layersPerBlock).ToList(), VaePrefix);

    /// <summary>SD 1.x keeps transformers' names: only the prefix differs.</summary>
    public static Dictionary<string, string> Clip(IEnumerable<string> names, string prefix = ClipPrefix) =>
        names.ToDictionary(n => n, n => prefix + n, StringComparer.Ordinal);

    public static Dictionary<string, string> OpenClip(IEnumerable<string> names, int layers, string prefix = OpenClipPrefix) =>
        Map(names, OpenClipRules(layers).ToList(), prefix);

    static Dictionary<string, string> Map(IEnumerable<string> names, List<Rule> rules, string prefix)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string name in names)
        {
            // The longest matching prefix wins (down_blocks.1.resnets.1. over down_blocks.1.).
            var rule = rules.Where(r => name.StartsWith(r.Diffusers, StringComparison.Ordinal)).MaxBy(r => r.Diffusers.Length);
            string ldm = name;
            if (rule is not null)
            {
                string rest = name[rule.Diffusers.Length..];
                if (rule.Inner?.FirstOrDefault(p => rest.StartsWith(p.Diffusers, StringComparison.Ordinal)) is { Diffusers: not null } inner)
                    rest = inner.Ldm + rest[inner.Diffusers.Length..];
                ldm = rule.Ldm + rest;
            }
            result[name] = prefix + ldm;
        }
        return result;
    }

    /// <summary>The checkpoint key without a pickle's optional "state_dict." level.</summary>
    public static string Normalize(string key) =>
        key.StartsWith(StateDictPrefix, StringComparison.Ordinal) ? key[StateDictPrefix.Length..] : key;
}
