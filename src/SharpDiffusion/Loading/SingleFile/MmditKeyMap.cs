namespace SharpDiffusion.Loading.SingleFile;

/// <summary>
/// The Stability (original MMDiT, sd3_impls / ComfyUI) names of every diffusers SD3Transformer2DModel parameter, written
/// as tables of name prefixes as diffusers' convert_sd3_transformer_checkpoint_to_diffusers renames them. A Stability
/// name may end in a part (<see cref="TensorPartsFile"/>): <c>#q/#k/#v</c> for the thirds of a fused <c>attn.qkv</c>,
/// <c>#swap</c> where the original adaLN gives (shift, scale) and diffusers (scale, shift): <c>final_layer</c> and the
/// last block's <c>context_block</c> (context_pre_only, whose text norm is diffusers' AdaLayerNormContinuous).
/// Also the prefixes of the other components inside a Stability single file.
/// </summary>
public static class MmditKeyMap
{
    public const string TransformerPrefix = "model.diffusion_model.";
    /// <summary>The 16-channel VAE in the LDM layout (<see cref="LdmKeyMap.Vae"/>).</summary>
    public const string VaePrefix = "first_stage_model.";
    /// <summary>transformers' CLIPTextModel(WithProjection) names under these prefixes (with the text_model. level).</summary>
    public const string ClipLPrefix = "text_encoders.clip_l.transformer.";
    public const string ClipGPrefix = "text_encoders.clip_g.transformer.";
    /// <summary>transformers' T5EncoderModel names (shared.weight, encoder.block.N...) under this prefix.</summary>
    public const string T5Prefix = "text_encoders.t5xxl.transformer.";

    /// <summary>(diffusers prefix, Stability prefix, part of a fused or swapped tensor or null).</summary>
    sealed record Rule(string Diffusers, string Stability, string? Part = null);

    static readonly Rule[] Top =
    [
        new("pos_embed.pos_embed", "pos_embed"),
        new("pos_embed.proj.", "x_embedder.proj."),
        new("time_text_embed.timestep_embedder.linear_1.", "t_embedder.mlp.0."),
        new("time_text_embed.timestep_embedder.linear_2.", "t_embedder.mlp.2."),
        new("time_text_embed.text_embedder.linear_1.", "y_embedder.mlp.0."),
        new("time_text_embed.text_embedder.linear_2.", "y_embedder.mlp.2."),
        new("context_embedder.", "context_embedder."),
        new("proj_out.", "final_layer.linear."),
        new("norm_out.linear.", "final_layer.adaLN_modulation.1.", TensorPartsFile.Swap),
    ];

    /// <summary>Inside <c>transformer_blocks.N.</c> ↔ <c>joint_blocks.N.</c>.</summary>
    static readonly Rule[] Block =
    [
        new("norm1.linear.", "x_block.adaLN_modulation.1."),
        new("norm1_context.linear.", "context_block.adaLN_modulation.1."),
        new("attn.to_q.", "x_block.attn.qkv.", "q"),
        new("attn.to_k.", "x_block.attn.qkv.", "k"),
        new("attn.to_v.", "x_block.attn.qkv.", "v"),
        new("attn.add_q_proj.", "context_block.attn.qkv.", "q"),
        new("attn.add_k_proj.", "context_block.attn.qkv.", "k"),
        new("attn.add_v_proj.", "context_block.attn.qkv.", "v"),
        new("attn.norm_q.", "x_block.attn.ln_q."),
        new("attn.norm_k.", "x_block.attn.ln_k."),
        new("attn.norm_added_q.", "context_block.attn.ln_q."),
        new("attn.norm_added_k.", "context_block.attn.ln_k."),
        new("attn.to_out.0.", "x_block.attn.proj."),
        new("attn.to_add_out.", "context_block.attn.proj."),
        new("attn2.to_q.", "x_block.attn2.qkv.", "q"),   // MMDiT-X (SD3.5 Medium): image-only second attention
        new("attn2.to_k.", "x_block.attn2.qkv.", "k"),
        new("attn2.to_v.", "x_block.attn2.qkv.", "v"),
        new("attn2.norm_q.", "x_block.attn2.ln_q."),
        new("attn2.norm_k.", "x_block.attn2.ln_k."),
        new("attn2.to_out.0.", "x_block.attn2.proj."),
        new("ff.net.0.proj.", "x_block.mlp.fc1."),
        new("ff.net.2.", "x_block.mlp.fc2."),
        new("ff_context.net.0.proj.", "context_block.mlp.fc1."),
        new("ff_context.net.2.", "context_block.mlp.fc2."),
    ];

    /// <summary>The Stability key (with <see cref="TransformerPrefix"/>, and a part where one applies) of each diffusers
    /// parameter name of a transformer with <paramref name="numLayers"/> blocks.</summary>
    public static Dictionary<string, string> Transformer(IEnumerable<string> names, int numLayers)
    {
        const string blocks = "transformer_blocks.";
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string name in names)
        {
            string stability;
            if (name.StartsWith(blocks, StringComparison.Ordinal))
            {
                string rest = name[blocks.Length..];
                int dot = rest.IndexOf('.');
                int index = int.Parse(rest[..dot], System.Globalization.CultureInfo.InvariantCulture);
                string inner = Rename(rest[(dot + 1)..], Block);
                // The last block's text norm is an AdaLayerNormContinuous: (shift, scale) in the original.
                if (index == numLayers - 1 && inner.StartsWith("context_block.adaLN_modulation.1.", StringComparison.Ordinal))
                    inner += LdmKeyMap.PartSeparator + TensorPartsFile.Swap;
                stability = $"joint_blocks.{index}.{inner}";
            }
            else
                stability = Rename(name, Top);
            result[name] = TransformerPrefix + stability;
        }
        return result;
    }

    static string Rename(string name, Rule[] rules)
    {
        var rule = rules.Where(r => name.StartsWith(r.Diffusers, StringComparison.Ordinal)).MaxBy(r => r.Diffusers.Length);
        if (rule is null) return name;
        string renamed = rule.Stability + name[rule.Diffusers.Length..];
        return rule.Part is null ? renamed : renamed + LdmKeyMap.PartSeparator + rule.Part;
    }
}
