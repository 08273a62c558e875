using SharpDiffusion.Configuration;

namespace SharpDiffusion.Models.T5;

/// <summary>
/// transformers' T5Config: the keys the encoder uses, with transformers' defaults. feed_forward_proj "gated-gelu"
/// (T5 v1.1, as SD3 and Flux ship it) means a gated feed-forward with gelu_new; dense_act_fn and is_gated_act,
/// when the file has them, override what feed_forward_proj implies (transformers sets the remaining keys last).
/// </summary>
public sealed record T5Config
{
    public int VocabSize { get; init; } = 32128;
    public int DModel { get; init; } = 512;
    /// <summary>Width of one attention head; heads × d_kv need not equal d_model.</summary>
    public int DKv { get; init; } = 64;
    public int DFf { get; init; } = 2048;
    public int NumLayers { get; init; } = 6;
    public int NumHeads { get; init; } = 8;
    public int RelativeAttentionNumBuckets { get; init; } = 32;
    public int RelativeAttentionMaxDistance { get; init; } = 128;
    public double LayerNormEpsilon { get; init; } = 1e-6;
    public string FeedForwardProj { get; init; } = "relu";
    public string DenseActFn { get; init; } = "relu";
    public bool IsGatedAct { get; init; }

    /// <summary>heads × d_kv: the width of q, k, v and o's input.</summary>
    public int InnerDim => NumHeads * DKv;

    static readonly string[] Activations = ["gelu_new", "gelu_pytorch_tanh"];

    /// <summary>Reads and validates every key before anything is built; refuses what this encoder does not do.</summary>
    public static T5Config From(JsonConfig c)
    {
        var d = new T5Config();
        const int maxSize = 1 << 16;
        string modelType = c.GetString("model_type", "t5");
        if (modelType != "t5")
            throw c.Invalid("model_type", modelType, "only \"t5\" (T5 v1.1 as SD3 and Flux use it) is supported");

        string proj = c.GetString("feed_forward_proj", d.FeedForwardProj);
        string[] parts = proj.Split('-');
        if (parts.Length > 2 || (parts.Length == 2 && parts[0] != "gated"))
            throw c.Invalid("feed_forward_proj", proj, "it must be an activation or 'gated-' and one, e.g. \"gated-gelu\"");
        // transformers: "gated-gelu" is kept for backward compatibility and means gelu_new.
        string impliedAct = proj == "gated-gelu" ? "gelu_new" : parts[^1];

        var config = new T5Config
        {
            VocabSize = c.GetInt("vocab_size", d.VocabSize, 1, 1 << 24),
            DModel = c.GetInt("d_model", d.DModel, 1, maxSize),
            DKv = c.GetInt("d_kv", d.DKv, 1, maxSize),
            DFf = c.GetInt("d_ff", d.DFf, 1, 4 * maxSize),
            NumLayers = c.GetInt("num_layers", d.NumLayers, 1, 1000),
            NumHeads = c.GetInt("num_heads", d.NumHeads, 1, 1024),
            RelativeAttentionNumBuckets = c.GetInt("relative_attention_num_buckets", d.RelativeAttentionNumBuckets, 4, 1 << 16),
            RelativeAttentionMaxDistance = c.GetInt("relative_attention_max_distance", d.RelativeAttentionMaxDistance, 1, 1 << 24),
            LayerNormEpsilon = c.GetDouble("layer_norm_epsilon", d.LayerNormEpsilon, above: 0),
            FeedForwardProj = proj,
            DenseActFn = c.GetString("dense_act_fn", impliedAct),
            IsGatedAct = c.GetBool("is_gated_act", parts[0] == "gated"),
        };
        if (!config.IsGatedAct)
            throw c.Invalid("feed_forward_proj", proj, "only the gated feed-forward of T5 v1.1 (\"gated-gelu\") is supported");
        if (!Activations.Contains(config.DenseActFn))
            throw c.Invalid("dense_act_fn", config.DenseActFn, "only gelu_new (tanh approximation, T5 v1.1's) is supported");
        // Bidirectional buckets: half per direction, half of those exact; the log-spaced rest must start below max distance.
        if (config.RelativeAttentionMaxDistance <= config.RelativeAttentionNumBuckets / 4)
            throw c.Invalid("relative_attention_max_distance", config.RelativeAttentionMaxDistance,
                $"it must exceed relative_attention_num_buckets / 4 ({config.RelativeAttentionNumBuckets / 4})");
        return config;
    }

    /// <summary>A lower bound on the parameter count: the shared embedding and per layer q/k/v/o and the three
    /// feed-forward matrices.</summary>
    public double MinimumParameterCount()
    {
        double model = DModel;
        return VocabSize * model + NumLayers * (4.0 * model * InnerDim + 3.0 * model * DFf);
    }
}
