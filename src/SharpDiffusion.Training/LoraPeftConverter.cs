using SharpDiffusion.Loading;
using static TorchSharp.torch;

namespace SharpDiffusion.Training;

/// <summary>
/// kohya → diffusers/PEFT: <c>lora_unet_{a_b_c}.lora_down.weight</c> becomes <c>unet.{a.b.c}.lora_A.weight</c> and
/// <c>lora_te_…</c> becomes <c>text_encoder.…</c>, the layout diffusers' <c>save_lora_weights</c> writes. PEFT files carry
/// no per-layer alpha, so alpha / rank is folded into lora_B: the update up·down·(alpha/rank) is unchanged.
/// kohya writes module paths with '_' for '.'; the dots come back by joining the words of diffusers' and transformers'
/// multi-word module names (<see cref="Compounds"/>), so no model is needed.
/// </summary>
public static class LoraPeftConverter
{
    /// <summary>Module names that contain '_' (longest first), in the UNet and CLIP text encoder.</summary>
    static readonly string[] Compounds =
    [
        "transformer_blocks", "down_blocks", "up_blocks", "mid_block", "to_out", "to_q", "to_k", "to_v", "proj_in", "proj_out",
        "text_model", "self_attn", "q_proj", "k_proj", "v_proj", "out_proj", "final_layer_norm", "layer_norm1", "layer_norm2",
        "time_embedding", "linear_1", "linear_2", "conv_in", "conv_out", "conv_shortcut", "time_emb_proj", "conv_norm_out",
    ];

    static readonly (string Kohya, string Peft)[] Prefixes = [("lora_unet_", "unet."), ("lora_te_", "text_encoder."), ("lora_te1_", "text_encoder.")];

    /// <summary>Reads a kohya-format LoRA and writes it in the PEFT layout (float32, metadata kept).</summary>
    public static void Convert(string kohyaPath, string outputPath)
    {
        using var file = SafetensorsFile.Open(kohyaPath);
        var stems = file.Tensors.Keys.Where(k => k.EndsWith(".lora_down.weight", StringComparison.Ordinal))
            .Select(k => k[..^".lora_down.weight".Length]).Order(StringComparer.Ordinal).ToList();
        if (stems.Count == 0)
            throw new InvalidDataException($"{kohyaPath}: no '*.lora_down.weight' tensors: not a kohya-format LoRA.");
        using var scope = NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var stem in stems)
        {
            string upKey = stem + ".lora_up.weight";
            if (!file.Tensors.ContainsKey(upKey))
                throw new InvalidDataException($"{kohyaPath}: '{stem}.lora_down.weight' has no '{upKey}'; the file is incomplete.");
            var down = file.Load(stem + ".lora_down.weight").to(ScalarType.Float32);   // [r, in]
            var up = file.Load(upKey).to(ScalarType.Float32);                           // [out, r]
            double scale = file.Tensors.ContainsKey(stem + ".alpha")
                ? file.Load(stem + ".alpha").to(ScalarType.Float64).item<double>() / down.shape[0] : 1.0;
            string module = PeftModule(kohyaPath, stem);
            tensors[module + ".lora_A.weight"] = down;
            tensors[module + ".lora_B.weight"] = up * scale;
        }
        SafetensorsWriter.Save(outputPath, tensors, file.Metadata.ToDictionary(StringComparer.Ordinal));
    }

    /// <summary>"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_out_0" → "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0".</summary>
    public static string PeftModule(string path, string stem)
    {
        var (kohya, peft) = Prefixes.FirstOrDefault(p => stem.StartsWith(p.Kohya, StringComparison.Ordinal));
        if (kohya is null)
            throw new NotSupportedException($"{path}: '{stem}' is not a lora_unet_/lora_te_ key; only SD 1.x/2.x kohya LoRAs convert.");
        var words = stem[kohya.Length..].Split('_');
        var parts = new List<string>();
        for (int i = 0; i < words.Length;)
        {
            var compound = Compounds.Where(c => Matches(words, i, c)).MaxBy(c => c.Length);
            string part = compound ?? words[i];
            parts.Add(part);
            i += part.Split('_').Length;
        }
        return peft + string.Join('.', parts);
    }

    static bool Matches(string[] words, int i, string compound)
    {
        var c = compound.Split('_');
        return i + c.Length <= words.Length && c.Select((w, j) => words[i + j] == w).All(x => x);
    }
}
