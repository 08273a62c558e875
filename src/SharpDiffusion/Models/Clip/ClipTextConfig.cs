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

    public static ClipTextConfig From(JsonConfig c)
    {
        var d = new ClipTextConfig();
        return new ClipTextConfig
        {
            VocabSize = c.GetInt("vocab_size", d.VocabSize),
            HiddenSize = c.GetInt("hidden_size", d.HiddenSize),
            IntermediateSize = c.GetInt("intermediate_size", d.IntermediateSize),
            NumHiddenLayers = c.GetInt("num_hidden_layers", d.NumHiddenLayers),
            NumAttentionHeads = c.GetInt("num_attention_heads", d.NumAttentionHeads),
            MaxPositionEmbeddings = c.GetInt("max_position_embeddings", d.MaxPositionEmbeddings),
            HiddenAct = c.GetString("hidden_act", d.HiddenAct),
            LayerNormEps = c.GetDouble("layer_norm_eps", d.LayerNormEps),
            EosTokenId = c.GetInt("eos_token_id", 2), // transformers' CLIPTextConfig default is 2 (the legacy rule)
        };
    }
}
