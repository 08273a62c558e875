using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using SharpDiffusion.Configuration;

namespace SharpDiffusion.Loading.SingleFile;

/// <summary>Which text encoder a single-file checkpoint carries.</summary>
public enum LdmTextEncoder
{
    /// <summary>SD 1.x: transformers' CLIPTextModel names under <c>cond_stage_model.transformer.</c>.</summary>
    Clip,
    /// <summary>SD 2.x: OpenCLIP under <c>cond_stage_model.model.</c> (fused attention projections, resblocks).</summary>
    OpenClip,
}

/// <summary>
/// The text encoders of an LDM checkpoint: transformers' CLIPTextModel config of SD 1.x's CLIP ViT-L or SD 2.x's OpenCLIP
/// ViT-H (its first text encoder), and SDXL's OpenCLIP bigG (CLIPTextModelWithProjection), inferred from the shapes or
/// taken from a given config.json checked against them.
/// </summary>
public sealed partial class LdmCheckpoint
{
    /// <summary>The prefix SD 1.x text-encoder keys have in this file: with or without transformers' "text_model." level
    /// (checkpoints saved with transformers before 4.?? lack it).</summary>
    public string ClipKeyPrefix => Has(ClipPrefix + "text_model.") ? ClipPrefix + "text_model." : ClipPrefix;

    JsonObject InferTextEncoder(string? configPath, LdmYaml? yaml)
    {
        long hidden, vocab, positions, intermediate;
        int layersInFile;
        if (TextEncoderKind == LdmTextEncoder.Clip)
        {
            string c = ClipKeyPrefix;
            var token = Shape(c + "embeddings.token_embedding.weight");
            (vocab, hidden) = (token[0], token[1]);
            positions = Dim(c + "embeddings.position_embedding.weight", 0);
            layersInFile = Indices(Regex.Escape(c) + @"encoder\.layers\.(\d+)\.").Count;
            intermediate = Dim(c + "encoder.layers.0.mlp.fc1.weight", 0);
        }
        else
        {
            const string c = LdmKeyMap.OpenClipPrefix;
            var token = Shape(c + "token_embedding.weight");
            (vocab, hidden) = (token[0], token[1]);
            positions = Dim(c + "positional_embedding", 0);
            layersInFile = Indices(Regex.Escape(c) + @"transformer\.resblocks\.(\d+)\.").Count;
            intermediate = Dim(c + "transformer.resblocks.0.mlp.c_fc.weight", 0);
        }

        if (configPath is not null)
        {
            var json = JsonConfig.Load(configPath);
            var given = Models.Clip.ClipTextConfig.From(json);
            if (given.HiddenSize != hidden)
                throw Refuse($"its text encoder has hidden size {hidden} but {configPath} says {given.HiddenSize}");
            if (given.NumHiddenLayers > layersInFile)
                throw Refuse($"its text encoder has {layersInFile} layers but {configPath} asks for {given.NumHiddenLayers}");
            return (JsonObject)JsonNode.Parse(File.ReadAllText(configPath))!;
        }

        int heads, layers;
        string act;
        if (TextEncoderKind == LdmTextEncoder.Clip && hidden == 768)
            (heads, layers, act) = (12, layersInFile, "quick_gelu"); // CLIP ViT-L/14
        else if (TextEncoderKind == LdmTextEncoder.OpenClip && hidden == 1024)
        {
            // OpenCLIP ViT-H/14; SD 2.x conditions on the penultimate layer (FrozenOpenCLIPEmbedder layer="penultimate"),
            // which diffusers stores as a 23-layer CLIPTextModel: the last resblock is not used.
            bool last = yaml?.String("model.params.cond_stage_config.params.layer") == "last";
            (heads, layers, act) = (16, last ? layersInFile : layersInFile - 1, "gelu");
        }
        else
            throw Refuse($"its text encoder ({(TextEncoderKind == LdmTextEncoder.Clip ? "CLIP" : "OpenCLIP")}, hidden size {hidden}) is not a standard size " +
                "(768 = CLIP ViT-L/14, 1024 = OpenCLIP ViT-H): give its transformers config.json with --text-encoder-config");
        return new JsonObject
        {
            ["architectures"] = Array(["CLIPTextModel"]),
            ["bos_token_id"] = 0,
            ["eos_token_id"] = 2,
            ["hidden_act"] = act,
            ["hidden_size"] = (int)hidden,
            ["intermediate_size"] = (int)intermediate,
            ["layer_norm_eps"] = 1e-5,
            ["max_position_embeddings"] = (int)positions,
            ["model_type"] = "clip_text_model",
            ["num_attention_heads"] = heads,
            ["num_hidden_layers"] = layers,
            ["pad_token_id"] = 1,
            ["projection_dim"] = TextEncoderKind == LdmTextEncoder.OpenClip ? 512 : 768,
            ["vocab_size"] = (int)vocab,
        };
    }

    /// <summary>SDXL's second text encoder (OpenCLIP, all its layers: SDXL takes the penultimate hidden state and the
    /// projected pooled output of the last): ViT-bigG (width 1280, 20 heads) from the shapes, else the given config.</summary>
    JsonObject InferTextEncoder2(string? configPath)
    {
        string c = BigGPrefix;
        var token = Shape(c + "token_embedding.weight");
        long vocab = token[0], hidden = token[1];
        long positions = Dim(c + "positional_embedding", 0);
        int layersInFile = Indices(Regex.Escape(c) + @"transformer\.resblocks\.(\d+)\.").Count;
        long intermediate = Dim(c + "transformer.resblocks.0.mlp.c_fc.weight", 0);
        long projection = Dim(c + "text_projection", 1, rank: 2);
        JsonObject config;
        if (configPath is not null)
        {
            var given = Models.Clip.ClipTextConfig.From(JsonConfig.Load(configPath));
            if (given.HiddenSize != hidden || given.NumHiddenLayers != layersInFile)
                throw Refuse($"its second text encoder has width {hidden} and {layersInFile} layers but {configPath} says {given.HiddenSize} and {given.NumHiddenLayers}");
            config = (JsonObject)JsonNode.Parse(File.ReadAllText(configPath))!;
        }
        else if (hidden == 1280)
            config = new JsonObject
            {
                ["bos_token_id"] = 0,
                ["eos_token_id"] = 2,
                ["hidden_act"] = "gelu",
                ["hidden_size"] = (int)hidden,
                ["intermediate_size"] = (int)intermediate,
                ["layer_norm_eps"] = 1e-5,
                ["max_position_embeddings"] = (int)positions,
                ["model_type"] = "clip_text_model",
                ["num_attention_heads"] = 20,
                ["num_hidden_layers"] = layersInFile,
                ["pad_token_id"] = 1,
                ["vocab_size"] = (int)vocab,
            };
        else
            throw Refuse($"its second text encoder (OpenCLIP, width {hidden}) is not ViT-bigG (1280): give its transformers config.json with --text-encoder-2-config");
        config["architectures"] = Array(["CLIPTextModelWithProjection"]);
        config["projection_dim"] = (int)projection;
        return config;
    }
}
