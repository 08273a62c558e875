using System.Text.RegularExpressions;
using SharpDiffusion.Loading;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Loading;

/// <summary>
/// A golden SD3 diffusers folder written as a Stability single file (and as ComfyUI-style text encoder files): the key
/// tables here are diffusers' convert_sd3_transformer_checkpoint_to_diffusers and convert_ldm_vae_checkpoint read
/// backwards, written independently of the library's maps. q/k/v are fused into attn.qkv (cat along rows); the final
/// layer's and the last context block's adaLN halves go back to the original (shift, scale) order.
/// </summary>
static class Sd3FileWriter
{
    /// <summary>(diffusers name pattern, Stability replacement); a named group "p" (q, k or v) is that third of a fused qkv.</summary>
    static readonly (string Pattern, string Stability)[] TransformerTable =
    [
        (@"^pos_embed\.pos_embed$", "pos_embed"),
        (@"^pos_embed\.proj\.(\w+)$", "x_embedder.proj.$1"),
        (@"^time_text_embed\.timestep_embedder\.linear_1\.(\w+)$", "t_embedder.mlp.0.$1"),
        (@"^time_text_embed\.timestep_embedder\.linear_2\.(\w+)$", "t_embedder.mlp.2.$1"),
        (@"^time_text_embed\.text_embedder\.linear_1\.(\w+)$", "y_embedder.mlp.0.$1"),
        (@"^time_text_embed\.text_embedder\.linear_2\.(\w+)$", "y_embedder.mlp.2.$1"),
        (@"^context_embedder\.(\w+)$", "context_embedder.$1"),
        (@"^proj_out\.(\w+)$", "final_layer.linear.$1"),
        (@"^norm_out\.linear\.(\w+)$", "final_layer.adaLN_modulation.1.$1"),
        (@"^transformer_blocks\.(\d+)\.norm1\.linear\.(\w+)$", "joint_blocks.$1.x_block.adaLN_modulation.1.$2"),
        (@"^transformer_blocks\.(\d+)\.norm1_context\.linear\.(\w+)$", "joint_blocks.$1.context_block.adaLN_modulation.1.$2"),
        (@"^transformer_blocks\.(\d+)\.attn\.to_(?<p>[qkv])\.(\w+)$", "joint_blocks.$1.x_block.attn.qkv.$2"),
        (@"^transformer_blocks\.(\d+)\.attn\.add_(?<p>[qkv])_proj\.(\w+)$", "joint_blocks.$1.context_block.attn.qkv.$2"),
        (@"^transformer_blocks\.(\d+)\.attn2\.to_(?<p>[qkv])\.(\w+)$", "joint_blocks.$1.x_block.attn2.qkv.$2"),
        (@"^transformer_blocks\.(\d+)\.attn\.norm_q\.weight$", "joint_blocks.$1.x_block.attn.ln_q.weight"),
        (@"^transformer_blocks\.(\d+)\.attn\.norm_k\.weight$", "joint_blocks.$1.x_block.attn.ln_k.weight"),
        (@"^transformer_blocks\.(\d+)\.attn\.norm_added_q\.weight$", "joint_blocks.$1.context_block.attn.ln_q.weight"),
        (@"^transformer_blocks\.(\d+)\.attn\.norm_added_k\.weight$", "joint_blocks.$1.context_block.attn.ln_k.weight"),
        (@"^transformer_blocks\.(\d+)\.attn2\.norm_q\.weight$", "joint_blocks.$1.x_block.attn2.ln_q.weight"),
        (@"^transformer_blocks\.(\d+)\.attn2\.norm_k\.weight$", "joint_blocks.$1.x_block.attn2.ln_k.weight"),
        (@"^transformer_blocks\.(\d+)\.attn\.to_out\.0\.(\w+)$", "joint_blocks.$1.x_block.attn.proj.$2"),
        (@"^transformer_blocks\.(\d+)\.attn\.to_add_out\.(\w+)$", "joint_blocks.$1.context_block.attn.proj.$2"),
        (@"^transformer_blocks\.(\d+)\.attn2\.to_out\.0\.(\w+)$", "joint_blocks.$1.x_block.attn2.proj.$2"),
        (@"^transformer_blocks\.(\d+)\.ff\.net\.0\.proj\.(\w+)$", "joint_blocks.$1.x_block.mlp.fc1.$2"),
        (@"^transformer_blocks\.(\d+)\.ff\.net\.2\.(\w+)$", "joint_blocks.$1.x_block.mlp.fc2.$2"),
        (@"^transformer_blocks\.(\d+)\.ff_context\.net\.0\.proj\.(\w+)$", "joint_blocks.$1.context_block.mlp.fc1.$2"),
        (@"^transformer_blocks\.(\d+)\.ff_context\.net\.2\.(\w+)$", "joint_blocks.$1.context_block.mlp.fc2.$2"),
    ];

    /// <summary>Writes <paramref name="model"/> (a golden folder) as one Stability file: the MMDiT and the VAE, and the
    /// text encoders the flags ask for under text_encoders.{clip_l,clip_g,t5xxl}.transformer.</summary>
    public static void Write(string model, string path, bool clips = true, bool t5 = true)
    {
        string folder = Golden.Path("v3", "models", model);
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        AddTransformer(folder, tensors);
        AddVae(folder, tensors);
        if (clips)
        {
            Add(folder, "text_encoder", "model", "text_encoders.clip_l.transformer.", tensors);
            Add(folder, "text_encoder_2", "model", "text_encoders.clip_g.transformer.", tensors);
        }
        if (t5) Add(folder, "text_encoder_3", "model", "text_encoders.t5xxl.transformer.", tensors);
        Save(path, tensors);
    }

    /// <summary>One text encoder as ComfyUI users keep it (clip_l.safetensors ...): transformers' names, with or without
    /// the text_model. level.</summary>
    public static void WriteTextEncoder(string model, string component, string path, bool withoutTextModelLevel = false, ScalarType? dtype = null)
    {
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        Add(Golden.Path("v3", "models", model), component, "model", "", tensors);
        if (withoutTextModelLevel)
            tensors = tensors.ToDictionary(kv => kv.Key.StartsWith("text_model.") ? kv.Key["text_model.".Length..] : kv.Key, kv => kv.Value);
        if (dtype is { } d)
            tensors = tensors.ToDictionary(kv => kv.Key, kv => kv.Value.to(d));
        Save(path, tensors);
    }

    /// <summary>A golden folder's VAE alone in the LDM layout without a prefix, as BFL's ae.safetensors stores Flux's.</summary>
    public static void WriteVae(string model, string path)
    {
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        AddVae(Golden.Path("v3", "models", model), tensors);
        Save(path, tensors.ToDictionary(kv => kv.Key["first_stage_model.".Length..], kv => kv.Value));
    }

    static void Save(string path, Dictionary<string, Tensor> tensors)
    {
        SafetensorsWriter.Save(path, tensors);
        foreach (var t in tensors.Values) t.Dispose();
    }

    static void Add(string folder, string component, string stem, string prefix, Dictionary<string, Tensor> into)
    {
        using var file = SafetensorsFile.Open(Path.Combine(folder, component, stem + ".safetensors"));
        foreach (var name in file.Tensors.Keys)
            into[prefix + name] = file.Load(name);
    }

    static void AddTransformer(string folder, Dictionary<string, Tensor> into)
    {
        using var file = SafetensorsFile.Open(Path.Combine(folder, "transformer", "diffusion_pytorch_model.safetensors"));
        int last = file.Tensors.Keys.Where(k => k.StartsWith("transformer_blocks.")).Select(k => int.Parse(k.Split('.')[1])).Max();
        var fused = new Dictionary<string, Tensor[]>(StringComparer.Ordinal);
        foreach (var name in file.Tensors.Keys)
        {
            var (pattern, stability) = TransformerTable.Single(r => Regex.IsMatch(name, r.Pattern));
            var match = Regex.Match(name, pattern);
            string key = "model.diffusion_model." + match.Result(stability);
            var t = file.Load(name);
            // The original adaLN of the final layer and of the last (context_pre_only) context block: (shift, scale).
            if (name.StartsWith("norm_out.linear.") || name.StartsWith($"transformer_blocks.{last}.norm1_context.linear."))
            {
                var halves = t.chunk(2, 0);
                var swapped = cat([halves[1], halves[0]], 0);
                foreach (var half in halves) half.Dispose();
                t.Dispose();
                t = swapped;
            }
            if (match.Groups["p"].Success)
                (fused.TryGetValue(key, out var parts) ? parts : fused[key] = new Tensor[3])["qkv".IndexOf(match.Groups["p"].Value[0])] = t;
            else
                into[key] = t;
        }
        foreach (var (key, parts) in fused)
            into[key] = cat(parts, 0);
    }

    /// <summary>diffusers' AutoencoderKL names → the LDM VAE's (decoder levels counted from the bottom; mid-block
    /// attention as 1×1 convolutions, as the original stores it).</summary>
    static void AddVae(string folder, Dictionary<string, Tensor> into)
    {
        using var file = SafetensorsFile.Open(Path.Combine(folder, "vae", "diffusion_pytorch_model.safetensors"));
        int levels = file.Tensors.Keys.Where(k => k.StartsWith("encoder.down_blocks.")).Select(k => int.Parse(k.Split('.')[2])).Max() + 1;
        foreach (var name in file.Tensors.Keys)
        {
            string n = Regex.Replace(name, @"^decoder\.up_blocks\.(\d+)\.", m => $"decoder.up.{levels - 1 - int.Parse(m.Groups[1].Value)}.");
            n = Regex.Replace(n, @"^encoder\.down_blocks\.(\d+)\.", "encoder.down.$1.");
            n = n.Replace(".resnets.", ".block.").Replace(".downsamplers.0.", ".downsample.").Replace(".upsamplers.0.", ".upsample.");
            n = n.Replace("mid_block.block.0.", "mid.block_1.").Replace("mid_block.block.1.", "mid.block_2.").Replace("mid_block.attentions.0.", "mid.attn_1.");
            n = n.Replace("attn_1.group_norm.", "attn_1.norm.").Replace("attn_1.to_q.", "attn_1.q.").Replace("attn_1.to_k.", "attn_1.k.")
                .Replace("attn_1.to_v.", "attn_1.v.").Replace("attn_1.to_out.0.", "attn_1.proj_out.");
            n = n.Replace("conv_shortcut.", "nin_shortcut.").Replace("conv_norm_out.", "norm_out.");
            var t = file.Load(name);
            into["first_stage_model." + n] = n.Contains("attn_1.") && n.EndsWith(".weight") && t.dim() == 2 && !n.Contains(".norm.")
                ? t.reshape(t.shape[0], t.shape[1], 1, 1) : t;
        }
    }

    /// <summary>A copy of a golden folder's configs only (config.json of each component, scheduler, CLIP tokenizers; no
    /// weights, no tokenizer_3), as a config folder for a single file.</summary>
    public static void WriteConfigFolder(string model, string to)
    {
        string folder = Golden.Path("v3", "models", model);
        foreach (string component in (string[])["transformer", "vae", "text_encoder", "text_encoder_2", "text_encoder_3", "scheduler", "tokenizer", "tokenizer_2"])
        {
            string dir = Directory.CreateDirectory(Path.Combine(to, component)).FullName;
            foreach (string f in Directory.GetFiles(Path.Combine(folder, component)).Where(f => !f.EndsWith(".safetensors")))
                File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        }
        File.Copy(Path.Combine(folder, "model_index.json"), Path.Combine(to, "model_index.json"));
    }
}

/// <summary>A safetensors file whose 2-D weights are stored as F8_E4M3 codes (each value's nearest e4m3fn number, no
/// scale), as ComfyUI's t5xxl_fp8_e4m3fn.safetensors; other tensors F32.</summary>
static class Float8FileWriter
{
    public static void Write(string path, IReadOnlyDictionary<string, Tensor> tensors)
    {
        var positive = Float8.E4M3FnValues.Take(0x7F).ToArray(); // codes 0x00..0x7E, rising
        var header = new System.Text.Json.Nodes.JsonObject();
        var data = new List<byte[]>();
        long offset = 0;
        foreach (var (name, t) in tensors)
        {
            var values = t.to(ScalarType.Float32).contiguous().data<float>().ToArray();
            bool f8 = t.dim() == 2;
            byte[] bytes = f8 ? values.Select(v => Encode(v, positive)).ToArray() : values.SelectMany(BitConverter.GetBytes).ToArray();
            header[name] = new System.Text.Json.Nodes.JsonObject
            {
                ["dtype"] = f8 ? "F8_E4M3" : "F32",
                ["shape"] = new System.Text.Json.Nodes.JsonArray(t.shape.Select(d => (System.Text.Json.Nodes.JsonNode)d).ToArray()),
                ["data_offsets"] = new System.Text.Json.Nodes.JsonArray(offset, offset + bytes.Length),
            };
            offset += bytes.Length;
            data.Add(bytes);
        }
        var json = System.Text.Encoding.UTF8.GetBytes(header.ToJsonString());
        using var stream = File.Create(path);
        stream.Write(BitConverter.GetBytes((ulong)json.Length));
        stream.Write(json);
        foreach (var bytes in data) stream.Write(bytes);
    }

    static byte Encode(float v, float[] positive)
    {
        float a = Math.Abs(v);
        int i = Array.BinarySearch(positive, a);
        if (i < 0)
        {
            i = ~i;
            if (i >= positive.Length) i = positive.Length - 1;
            else if (i > 0 && a - positive[i - 1] <= positive[i] - a) i--;
        }
        return (byte)(i | (v < 0 ? 0x80 : 0));
    }
}
