using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace SharpDiffusion.Loading.SingleFile;

/// <summary>SD3's three text encoders, as diffusers names their folders.</summary>
public enum Sd3TextEncoder
{
    /// <summary>CLIP ViT-L/14 (width 768): <c>text_encoder</c>, ComfyUI's clip_l.safetensors.</summary>
    ClipL,
    /// <summary>OpenCLIP ViT-bigG/14 (width 1280, projected): <c>text_encoder_2</c>, clip_g.safetensors.</summary>
    ClipG,
    /// <summary>T5 v1.1 XXL encoder: <c>text_encoder_3</c>, t5xxl_fp16.safetensors / t5xxl_fp8_e4m3fn.safetensors.</summary>
    T5,
}

/// <summary>
/// Where one text encoder's weights are in a tensor file, in transformers' layout (CLIPTextModelWithProjection,
/// T5EncoderModel) under <see cref="Prefix"/>: a Stability single file's <c>text_encoders.clip_l.transformer.</c>, or
/// nothing for a separate file as ComfyUI users keep them (with or without the <c>text_model.</c> level). Recognised by
/// the tensors: T5 by <c>encoder.block.0.layer.0.SelfAttention.q.weight</c>, CLIP by its token embedding, CLIP-L and
/// bigG by width (768, 1280) or, for other widths, by the prefix or the file name (clip_l*, clip_g*).
/// </summary>
public sealed record TextEncoderFile(Sd3TextEncoder Kind, string Path, string Prefix, bool HasTextModelLevel)
{
    const string T5Probe = "encoder.block.0.layer.0.SelfAttention.q.weight";
    const string ClipProbe = "embeddings.token_embedding.weight";

    /// <summary>The diffusers folder of this encoder in a StableDiffusion3Pipeline.</summary>
    public string Folder => Kind switch { Sd3TextEncoder.ClipL => "text_encoder", Sd3TextEncoder.ClipG => "text_encoder_2", _ => "text_encoder_3" };

    public string What => Kind switch { Sd3TextEncoder.ClipL => "CLIP-L", Sd3TextEncoder.ClipG => "CLIP-G (bigG)", _ => "T5" };

    /// <summary>The stored key of a parameter of our model (transformers' names).</summary>
    public string KeyOf(string name) =>
        HasTextModelLevel || !name.StartsWith("text_model.", StringComparison.Ordinal) ? Prefix + name : Prefix + name["text_model.".Length..];

    /// <summary>Every text encoder in <paramref name="shapes"/> (normalised keys → shapes) of the file at <paramref name="path"/>.</summary>
    public static List<TextEncoderFile> Find(string path, IReadOnlyDictionary<string, long[]> shapes)
    {
        var found = new List<TextEncoderFile>();
        foreach (string key in shapes.Keys)
        {
            if (key.EndsWith(T5Probe, StringComparison.Ordinal))
                found.Add(new(Sd3TextEncoder.T5, path, key[..^T5Probe.Length], false));
            else if (key.EndsWith(ClipProbe, StringComparison.Ordinal))
            {
                string at = key[..^ClipProbe.Length];
                bool level = at.EndsWith("text_model.", StringComparison.Ordinal);
                string prefix = level ? at[..^"text_model.".Length] : at;
                found.Add(new(ClipKind(path, prefix, shapes[key]), path, prefix, level));
            }
        }
        return found;
    }

    static Sd3TextEncoder ClipKind(string path, string prefix, long[] tokenEmbedding)
    {
        long width = tokenEmbedding.Length == 2 ? tokenEmbedding[1] : 0;
        if (width == 768) return Sd3TextEncoder.ClipL;
        if (width == 1280) return Sd3TextEncoder.ClipG;
        string hint = prefix + " " + System.IO.Path.GetFileName(path).ToLowerInvariant();
        if (hint.Contains("clip_l", StringComparison.Ordinal)) return Sd3TextEncoder.ClipL;
        if (hint.Contains("clip_g", StringComparison.Ordinal)) return Sd3TextEncoder.ClipG;
        throw new InvalidDataException($"{path}: a CLIP text encoder of width {width} is neither CLIP-L (768) nor bigG (1280); name the file clip_l*.safetensors or clip_g*.safetensors to say which it is.");
    }

    /// <summary>The config (transformers config.json contents) of this encoder from its tensor shapes: what the weights
    /// fix (widths, layers, vocabulary, positions, projection, T5's heads and d_kv) and, for CLIP, what the standard models
    /// use: 64 channels per head, quick_gelu for CLIP-L, gelu for bigG. A width whose heads cannot be told (not a multiple
    /// of 64) needs the model's config.json (<see cref="SingleFileOptions.DiffusersConfig"/>).</summary>
    public JsonObject InferConfig(IReadOnlyDictionary<string, long[]> shapes)
    {
        long[] Shape(string name) => shapes.TryGetValue(KeyOf(name), out var s) ? s
            : throw new InvalidDataException($"{Path}: the {What} text encoder has no tensor {KeyOf(name)} (an incomplete file?).");
        int Count(string pattern)
        {
            var regex = new Regex("^" + Regex.Escape(KeyOf(pattern)).Replace("N", @"(\d+)", StringComparison.Ordinal), RegexOptions.CultureInvariant);
            return shapes.Keys.Select(k => regex.Match(k)).Where(m => m.Success).Select(m => int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).Distinct().Count();
        }

        if (Kind == Sd3TextEncoder.T5)
        {
            var embedding = shapes.TryGetValue(KeyOf("shared.weight"), out var shared) ? shared : Shape("encoder.embed_tokens.weight");
            long dModel = embedding[1];
            long inner = Shape("encoder.block.0.layer.0.SelfAttention.q.weight")[0];
            var bias = Shape("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"); // [buckets, heads]
            return new JsonObject
            {
                ["architectures"] = new JsonArray("T5EncoderModel"),
                ["d_ff"] = (int)Shape("encoder.block.0.layer.1.DenseReluDense.wi_0.weight")[0],
                ["d_kv"] = (int)(inner / bias[1]),
                ["d_model"] = (int)dModel,
                ["dense_act_fn"] = "gelu_new",
                ["feed_forward_proj"] = "gated-gelu",
                ["is_gated_act"] = true,
                ["layer_norm_epsilon"] = 1e-6,
                ["model_type"] = "t5",
                ["num_heads"] = (int)bias[1],
                ["num_layers"] = Count("encoder.block.N."),
                ["relative_attention_max_distance"] = 128,
                ["relative_attention_num_buckets"] = (int)bias[0],
                ["vocab_size"] = (int)embedding[0],
            };
        }

        var token = Shape("text_model.embeddings.token_embedding.weight");
        long hidden = token[1];
        if (hidden % 64 != 0)
            throw new InvalidDataException($"{Path}: the {What} text encoder is {hidden} wide, not a multiple of 64, so its attention heads cannot be told from the weights; " +
                $"give the model's diffusers folder (its {Folder}/config.json) as the single-file config.");
        // SD3's CLIP-L is a CLIPTextModelWithProjection whose projection is the identity (diffusers sets torch.eye when the file has none).
        long projection = shapes.TryGetValue(KeyOf("text_projection.weight"), out var p) ? p[0] : hidden;
        return new JsonObject
        {
            ["architectures"] = new JsonArray("CLIPTextModelWithProjection"),
            ["bos_token_id"] = 0,
            ["eos_token_id"] = 2,
            ["hidden_act"] = Kind == Sd3TextEncoder.ClipL ? "quick_gelu" : "gelu",
            ["hidden_size"] = (int)hidden,
            ["intermediate_size"] = (int)Shape("text_model.encoder.layers.0.mlp.fc1.weight")[0],
            ["layer_norm_eps"] = 1e-5,
            ["max_position_embeddings"] = (int)Shape("text_model.embeddings.position_embedding.weight")[0],
            ["model_type"] = "clip_text_model",
            ["num_attention_heads"] = (int)(hidden / 64),
            ["num_hidden_layers"] = Count("text_model.encoder.layers.N."),
            ["pad_token_id"] = 1,
            ["projection_dim"] = (int)projection,
            ["vocab_size"] = (int)token[0],
        };
    }

    /// <summary>The keys of <see cref="InferConfig"/> that the weights fix, which a given config.json must agree with.</summary>
    public static readonly IReadOnlyDictionary<Sd3TextEncoder, string[]> FixedKeys = new Dictionary<Sd3TextEncoder, string[]>
    {
        [Sd3TextEncoder.ClipL] = ["hidden_size", "intermediate_size", "max_position_embeddings", "num_hidden_layers", "projection_dim", "vocab_size"],
        [Sd3TextEncoder.ClipG] = ["hidden_size", "intermediate_size", "max_position_embeddings", "num_hidden_layers", "projection_dim", "vocab_size"],
        [Sd3TextEncoder.T5] = ["d_ff", "d_kv", "d_model", "num_heads", "num_layers", "relative_attention_num_buckets", "vocab_size"],
    };
}
