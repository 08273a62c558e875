using SharpDiffusion.Models.Transformers;

namespace SharpDiffusion.Loading.SingleFile;

/// <summary>
/// Black Forest Labs' original Flux.1 transformer names (flux1-dev.safetensors, flux1-schnell.safetensors, their float8
/// and GGUF conversions; ComfyUI's copies add <c>model.diffusion_model.</c>) → diffusers' FluxTransformer2DModel names, as
/// data (diffusers' convert_flux_transformer_checkpoint_to_diffusers). A rule maps a BFL name to one or more diffusers
/// names: a layer (its .weight and .bias), or one tensor; several targets split the stored rows
/// (<see cref="BflSplit.Parts"/>: qkv = [q | k | v], a single block's linear1 = [q | k | v | mlp]); the final
/// modulation is stored [shift | scale], diffusers' AdaLayerNormContinuous wants [scale | shift].
/// </summary>
public static class BflKeyMap
{
    /// <summary>The prefix ComfyUI's saved checkpoints put before the BFL names.</summary>
    public const string ComfyPrefix = "model.diffusion_model.";

    /// <summary>How a stored tensor becomes its diffusers tensors.</summary>
    public enum BflSplit
    {
        /// <summary>As it is.</summary>
        None,
        /// <summary>Rows cut into D-row parts (D = the transformer width), the last part taking the rest.</summary>
        Parts,
        /// <summary>[shift | scale] rows swapped to [scale | shift].</summary>
        SwapHalves,
    }

    /// <param name="Bfl">the BFL name (a layer without .weight/.bias when <paramref name="Layer"/>).</param>
    /// <param name="Diffusers">the diffusers name(s), in the order of the stored rows.</param>
    public sealed record Rule(string Bfl, string[] Diffusers, bool Layer = true, BflSplit Split = BflSplit.None);

    static Rule L(string bfl, string diffusers, BflSplit split = BflSplit.None) => new(bfl, [diffusers], true, split);
    static Rule T(string bfl, string diffusers) => new(bfl, [diffusers], Layer: false);
    static Rule Parts(string bfl, params string[] diffusers) => new(bfl, diffusers, true, BflSplit.Parts);

    static readonly Rule[] Top =
    [
        L("time_in.in_layer", "time_text_embed.timestep_embedder.linear_1"),
        L("time_in.out_layer", "time_text_embed.timestep_embedder.linear_2"),
        L("guidance_in.in_layer", "time_text_embed.guidance_embedder.linear_1"),
        L("guidance_in.out_layer", "time_text_embed.guidance_embedder.linear_2"),
        L("vector_in.in_layer", "time_text_embed.text_embedder.linear_1"),
        L("vector_in.out_layer", "time_text_embed.text_embedder.linear_2"),
        L("txt_in", "context_embedder"),
        L("img_in", "x_embedder"),
        L("final_layer.linear", "proj_out"),
        L("final_layer.adaLN_modulation.1", "norm_out.linear", BflSplit.SwapHalves),
    ];

    /// <summary>double_blocks.{i}. → transformer_blocks.{i}.</summary>
    static readonly Rule[] Double =
    [
        L("img_mod.lin", "norm1.linear"),
        L("txt_mod.lin", "norm1_context.linear"),
        Parts("img_attn.qkv", "attn.to_q", "attn.to_k", "attn.to_v"),
        Parts("txt_attn.qkv", "attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
        T("img_attn.norm.query_norm.scale", "attn.norm_q.weight"),
        T("img_attn.norm.key_norm.scale", "attn.norm_k.weight"),
        T("txt_attn.norm.query_norm.scale", "attn.norm_added_q.weight"),
        T("txt_attn.norm.key_norm.scale", "attn.norm_added_k.weight"),
        L("img_attn.proj", "attn.to_out.0"),
        L("txt_attn.proj", "attn.to_add_out"),
        L("img_mlp.0", "ff.net.0.proj"),
        L("img_mlp.2", "ff.net.2"),
        L("txt_mlp.0", "ff_context.net.0.proj"),
        L("txt_mlp.2", "ff_context.net.2"),
    ];

    /// <summary>single_blocks.{i}. → single_transformer_blocks.{i}.</summary>
    static readonly Rule[] Single =
    [
        L("modulation.lin", "norm.linear"),
        Parts("linear1", "attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"),
        T("norm.query_norm.scale", "attn.norm_q.weight"),
        T("norm.key_norm.scale", "attn.norm_k.weight"),
        L("linear2", "proj_out"),
    ];

    /// <summary>One stored tensor's diffusers names: (BFL name, diffusers names, split), the names without any ComfyUI prefix.</summary>
    public static IEnumerable<(string Bfl, string[] Diffusers, BflSplit Split)> Expand(int doubleBlocks, int singleBlocks)
    {
        IEnumerable<(string, string[], BflSplit)> Apply(IEnumerable<Rule> rules, string bflPrefix, string diffusersPrefix) =>
            rules.SelectMany(r => r.Layer
                ? new[] { ".weight", ".bias" }.Select(s => (bflPrefix + r.Bfl + s, r.Diffusers.Select(d => diffusersPrefix + d + s).ToArray(), r.Split))
                : [(bflPrefix + r.Bfl, r.Diffusers.Select(d => diffusersPrefix + d).ToArray(), r.Split)]);
        return Apply(Top, "", "")
            .Concat(Enumerable.Range(0, doubleBlocks).SelectMany(i => Apply(Double, $"double_blocks.{i}.", $"transformer_blocks.{i}.")))
            .Concat(Enumerable.Range(0, singleBlocks).SelectMany(i => Apply(Single, $"single_blocks.{i}.", $"single_transformer_blocks.{i}.")));
    }

    /// <summary>
    /// <see cref="Expand"/> read backwards, for writing a file in BFL's layout: each stored tensor's BFL name and shape
    /// from diffusers' names and shapes (<paramref name="diffusers"/>), with the diffusers names it holds. A fused
    /// tensor's rows are its parts' rows added up ([q | k | v], [q | k | v | mlp]); the swapped final modulation keeps its
    /// shape. A stored tensor none of whose parts the model has is left out (schnell has no guidance_in); a fused tensor
    /// with only some of its parts, or a diffusers tensor no rule covers, is refused by name.
    /// </summary>
    public static List<(string Bfl, long[] Shape, string[] Diffusers)> Fuse(IReadOnlyDictionary<string, long[]> diffusers, int doubleBlocks, int singleBlocks)
    {
        var fused = new List<(string, long[], string[])>();
        var covered = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (bfl, parts, split) in Expand(doubleBlocks, singleBlocks))
        {
            var present = parts.Where(diffusers.ContainsKey).ToList();
            if (present.Count == 0) continue;
            if (present.Count != parts.Length)
                throw new ArgumentException($"BflKeyMap.Fuse: {bfl} needs {string.Join(", ", parts)}, but {string.Join(", ", parts.Except(present))} is missing; give every part of a fused tensor.");
            var first = diffusers[parts[0]];
            long[] shape = split == BflSplit.Parts ? [parts.Sum(p => diffusers[p][0]), .. first[1..]] : first;
            fused.Add((bfl, shape, parts));
            covered.UnionWith(parts);
        }
        var left = diffusers.Keys.Where(k => !covered.Contains(k)).ToList();
        if (left.Count > 0)
            throw new ArgumentException($"BflKeyMap.Fuse: no BFL name for {string.Join(", ", left.Take(5))}{(left.Count > 5 ? $" (and {left.Count - 5} more)" : "")}; " +
                $"the block counts ({doubleBlocks}+{singleBlocks}) must be the model's.");
        return fused;
    }

    /// <summary>Whether the names are a BFL Flux transformer's (its img_in and a double block).</summary>
    public static bool IsFlux(IEnumerable<string> names)
    {
        var set = names.Select(Strip).ToHashSet(StringComparer.Ordinal);
        return set.Contains("img_in.weight") && set.Contains("double_blocks.0.img_attn.qkv.weight");
    }

    /// <summary>The name without ComfyUI's prefix.</summary>
    public static string Strip(string name) => name.StartsWith(ComfyPrefix, StringComparison.Ordinal) ? name[ComfyPrefix.Length..] : name;

    /// <summary>
    /// The config the shapes give: width D = img_in's rows, in_channels its columns, head size = query_norm's length,
    /// heads = D / head size, T5 width = txt_in's columns, pooled width = vector_in's columns, the block counts, and
    /// guidance_embeds = whether guidance_in is there. The rotary axes cannot be seen in the weights: those of
    /// <paramref name="known"/> (a folder's config), else Flux.1's [16, 56, 56] when the head size is 128.
    /// </summary>
    public static FluxTransformer2DConfig InferConfig(ITensorFile file, FluxTransformer2DConfig? known = null)
    {
        var shapes = file.Headers.ToDictionary(h => Strip(h.Name), h => h.Shape, StringComparer.Ordinal);
        long[] Shape(string name, int dims) => shapes.TryGetValue(name, out var s) && s.Length == dims ? s
            : throw new InvalidDataException($"{file.Path}: tensor '{name}' is missing or not {dims}-D; this is not a Flux.1 transformer in the BFL layout.");
        var imgIn = Shape("img_in.weight", 2);
        long headDim = Shape("double_blocks.0.img_attn.norm.query_norm.scale", 1)[0];
        if (headDim < 2 || imgIn[0] % headDim != 0)
            throw new InvalidDataException($"{file.Path}: width {imgIn[0]} is not a whole number of heads of {headDim} (query_norm.scale); the file is damaged.");
        int Count(string prefix) => Enumerable.Range(0, 10_000).TakeWhile(i => shapes.Keys.Any(k => k.StartsWith($"{prefix}.{i}.", StringComparison.Ordinal))).Count();
        int[] axes = known?.AxesDimsRope ?? (headDim == 128 ? [16, 56, 56]
            : throw new InvalidDataException($"{file.Path}: heads of {headDim} channels are not Flux.1's (128); its rotary axes (axes_dims_rope) cannot be read from the weights: " +
                "load it as --transformer of a diffusers folder whose transformer/config.json gives them."));
        return new FluxTransformer2DConfig
        {
            InChannels = (int)imgIn[1],
            NumLayers = Count("double_blocks"),
            NumSingleLayers = Count("single_blocks"),
            AttentionHeadDim = (int)headDim,
            NumAttentionHeads = (int)(imgIn[0] / headDim),
            JointAttentionDim = (int)Shape("txt_in.weight", 2)[1],
            PooledProjectionDim = (int)Shape("vector_in.in_layer.weight", 2)[1],
            GuidanceEmbeds = shapes.ContainsKey("guidance_in.in_layer.weight"),
            AxesDimsRope = axes,
        };
    }
}
