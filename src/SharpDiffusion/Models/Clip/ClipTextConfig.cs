using SharpDiffusion.Configuration;

namespace SharpDiffusion.Models.Clip;

/// <summary>transformers' CLIPTextConfig: the keys SD's text encoders use, with transformers' defaults.</summary>
public sealed record ClipTextConfig
{
    public int VocabSize { get; init; } = 49408;
    public int HiddenSize { get; init; } = 512;
    public int IntermediateSize { get; init; } = 2048;
    public int NumHiddenLayers { get; init; } = 12;
    public int NumAttentionHeads { get; init; } = 8;
    public int MaxPositionEmbeddings { get; init; } = 77;
    public string HiddenAct { get; init; } = "quick_gelu";
    public double LayerNormEps { get; init; } = 1e-5;
    public int EosTokenId { get; init; } = 49407;
    /// <summary>CLIPTextModelWithProjection (SDXL's second encoder): the width of text_projection; null for CLIPTextModel.</summary>
    public int? ProjectionDim { get; init; }

    static readonly string[] Activations = ["quick_gelu", "gelu", "gelu_new", "gelu_pytorch_tanh", "silu", "swish", "relu"];

    /// <summary>Reads and validates every key before anything is built; as transformers' CLIPAttention, the heads
    /// must divide hidden_size.</summary>
    public static ClipTextConfig From(JsonConfig c)
    {
        var d = new ClipTextConfig();
        const int maxSize = 1 << 16;
        var config = new ClipTextConfig
        {
            VocabSize = c.GetInt("vocab_size", d.VocabSize, 1, 1 << 24),
            HiddenSize = c.GetInt("hidden_size", d.HiddenSize, 1, maxSize),
            IntermediateSize = c.GetInt("intermediate_size", d.IntermediateSize, 1, 4 * maxSize),
            NumHiddenLayers = c.GetInt("num_hidden_layers", d.NumHiddenLayers, 1, 1000),
            NumAttentionHeads = c.GetInt("num_attention_heads", d.NumAttentionHeads, 1, maxSize),
            MaxPositionEmbeddings = c.GetInt("max_position_embeddings", d.MaxPositionEmbeddings, 1, maxSize),
            HiddenAct = c.GetString("hidden_act", d.HiddenAct),
            LayerNormEps = c.GetDouble("layer_norm_eps", d.LayerNormEps, above: 0),
            EosTokenId = c.GetInt("eos_token_id", 2, 0), // transformers' CLIPTextConfig default is 2 (the legacy rule)
            ProjectionDim = c.GetStringArray("architectures", []).Contains("CLIPTextModelWithProjection")
                ? c.GetInt("projection_dim", 512, 1, maxSize) : null,
        };
        if (config.HiddenSize % config.NumAttentionHeads != 0)
            throw c.Invalid("num_attention_heads", config.NumAttentionHeads, $"it must divide hidden_size ({config.HiddenSize})");
        if (!Activations.Contains(config.HiddenAct))
            throw new NotSupportedException($"Config {c.Source}: hidden_act '{config.HiddenAct}' is not supported ({string.Join(", ", Activations)} are).");
        return config;
    }

    /// <summary>A lower bound on the parameter count: token and position embeddings, and per layer the q/k/v/out
    /// projections and the two MLP matrices.</summary>
    public double MinimumParameterCount()
    {
        double h = HiddenSize;
        return (VocabSize + (double)MaxPositionEmbeddings) * h + NumHiddenLayers * (4 * h * h + 2 * h * IntermediateSize);
    }
}
