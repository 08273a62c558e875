using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using SharpDiffusion.Models.ControlNet;
using SharpDiffusion.Models.UNet;

namespace SharpDiffusion.Loading.SingleFile;

/// <summary>
/// A ControlNet single file in the original (lllyasviel / AUTOMATIC1111) layout, e.g. control_v11p_sd15_canny.pth:
/// the keys under <c>control_model.</c> or bare. Its down path and mid block carry the LDM UNet names (mapped with
/// <see cref="LdmKeyMap.UNet"/>); the rest is this table: <c>input_hint_block.{0, 2, …, 2k}</c> = the conditioning
/// embedding's convs (SiLUs between them at the odd indices), <c>zero_convs.N.0</c> = controlnet_down_blocks.N,
/// <c>middle_block_out.0</c> = controlnet_mid_block. The config is inferred from the shapes alone.
/// </summary>
public sealed class LdmControlNet
{
    public const string ControlModelPrefix = "control_model.";

    readonly Dictionary<string, long[]> _shapes;
    readonly string _path;

    /// <summary>"control_model." or "" (bare keys).</summary>
    public string Prefix { get; }
    public ControlNetModelConfig Config { get; }

    LdmControlNet(string path, Dictionary<string, long[]> shapes, UNet2DConditionConfig? unet)
    {
        (_path, _shapes) = (path, shapes);
        if (shapes.ContainsKey("difference"))
            throw Refuse("it is a diff-ControlNet (tensor 'difference': its weights are differences from one base model), which is not supported; " +
                "use the full ControlNet (e.g. control_v11p_sd15_canny.pth)");
        Prefix = shapes.Keys.Any(k => k.StartsWith(ControlModelPrefix, StringComparison.Ordinal)) ? ControlModelPrefix : "";
        if (!shapes.ContainsKey(Prefix + "input_hint_block.0.weight"))
            throw Refuse(shapes.ContainsKey("controlnet_cond_embedding.conv_in.weight")
                ? "it is a ControlNet in diffusers' layout (controlnet_cond_embedding.*): put it in a folder as diffusion_pytorch_model.safetensors with its config.json"
                : "no ControlNet keys (control_model.input_hint_block.* or input_hint_block.*): not a ControlNet");
        Config = ControlNetModelConfig.From(InferConfig(unet).ToJsonString(), $"ControlNet config inferred from {path}");
    }

    /// <summary>Reads the names and shapes of <paramref name="file"/> (no data) and infers the config; <paramref name="unet"/>,
    /// the UNet it will serve, settles what shapes cannot tell (attention heads, SDXL's time-id embedding width).</summary>
    public static LdmControlNet Inspect(ITensorFile file, UNet2DConditionConfig? unet = null)
    {
        var shapes = new Dictionary<string, long[]>(StringComparer.Ordinal);
        foreach (var h in file.Headers)
            shapes[LdmKeyMap.Normalize(h.Name)] = h.Shape;
        return new LdmControlNet(file.Path, shapes, unet);
    }

    /// <summary>The LDM key (with <see cref="Prefix"/>) of each ControlNetModel parameter name.</summary>
    public Dictionary<string, string> KeyMap(IEnumerable<string> names)
    {
        var list = names.ToList();
        int hintConvs = Config.ConditioningEmbeddingOutChannels.Length * 2;  // conv_in, 2 per later width, conv_out
        var unetNames = LdmKeyMap.UNet(list, Config.Unet);
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string name in list)
        {
            string ldm = Rename(name, "controlnet_cond_embedding.conv_in.", "input_hint_block.0.")
                ?? Rename(name, "controlnet_cond_embedding.conv_out.", $"input_hint_block.{2 * (hintConvs - 1)}.")
                ?? RenameIndexed(name, "controlnet_cond_embedding.blocks.", j => $"input_hint_block.{2 + 2 * j}.")
                ?? RenameIndexed(name, "controlnet_down_blocks.", n => $"zero_convs.{n}.0.")
                ?? Rename(name, "controlnet_mid_block.", "middle_block_out.0.")
                ?? unetNames[name][LdmKeyMap.UNetPrefix.Length..];
            map[name] = Prefix + ldm;
        }
        return map;
    }

    static string? Rename(string name, string from, string to) =>
        name.StartsWith(from, StringComparison.Ordinal) ? to + name[from.Length..] : null;

    static string? RenameIndexed(string name, string from, Func<int, string> to)
    {
        if (!name.StartsWith(from, StringComparison.Ordinal)) return null;
        string rest = name[from.Length..];
        int dot = rest.IndexOf('.');
        return dot > 0 && int.TryParse(rest[..dot], NumberStyles.None, CultureInfo.InvariantCulture, out int i) ? to(i) + rest[(dot + 1)..] : null;
    }

    JsonObject InferConfig(UNet2DConditionConfig? unet)
    {
        string p = Prefix;
        var convIn = Shape(p + "input_blocks.0.0.weight");
        if (convIn.Length != 4) throw Refuse($"{p}input_blocks.0.0.weight is [{string.Join(", ", convIn)}], not a 4-D conv");
        int ch0 = (int)convIn[0];

        // input_hint_block: convs at even indices; conv_in, then (conv, stride-2 conv) per later width, then conv_out.
        var hint = Indices(Regex.Escape(p) + @"input_hint_block\.(\d+)\.weight$").ToList();
        if (hint.Count < 2 || hint.Count % 2 != 0 || hint.Where((k, i) => k != 2 * i).Any())
            throw Refuse($"input_hint_block has convs at [{string.Join(", ", hint)}]; expected 0, 2, …, 2k with an even count");
        int widths = hint.Count / 2;
        var embedding = new[] { (int)Shape($"{p}input_hint_block.0.weight")[0] }
            .Concat(Enumerable.Range(1, widths - 1).Select(k => (int)Shape($"{p}input_hint_block.{4 * k}.weight")[0])).ToArray();
        if (Shape($"{p}input_hint_block.{hint[^1]}.weight")[0] != ch0)
            throw Refuse($"input_hint_block.{hint[^1]} gives {Shape($"{p}input_hint_block.{hint[^1]}.weight")[0]} channels; conv_in gives {ch0}");

        // input_blocks.1..: resnets (with attention at .1 when present); a downsampler (.0.op) ends each level but the last.
        var channels = new List<int>();
        var layers = new List<int>();
        var attention = new List<bool>();
        var depth = new List<int>();
        long context = 0;
        bool linear = false;
        int count = 0;
        bool levelAttention = false;
        int levelDepth = 1, levelChannels = 0;
        foreach (int n in Indices(Regex.Escape(p) + @"input_blocks\.(\d+)\.").Where(n => n > 0))
        {
            if (_shapes.ContainsKey($"{p}input_blocks.{n}.0.op.weight"))
            {
                channels.Add(levelChannels); layers.Add(count); attention.Add(levelAttention); depth.Add(levelDepth);
                (count, levelAttention, levelDepth) = (0, false, 1);
                continue;
            }
            levelChannels = (int)Shape($"{p}input_blocks.{n}.0.out_layers.3.weight")[0];
            count++;
            string attn = $"{p}input_blocks.{n}.1.";
            if (_shapes.TryGetValue(attn + "proj_in.weight", out var projIn))
            {
                levelAttention = true;
                linear = projIn.Length == 2;
                levelDepth = Indices(Regex.Escape(attn) + @"transformer_blocks\.(\d+)\.").Count;
                context = Shape(attn + "transformer_blocks.0.attn2.to_k.weight")[1];
            }
        }
        if (count == 0) throw Refuse("no resnets after the last downsampler (input_blocks.*): an unusual layout");
        channels.Add(levelChannels); layers.Add(count); attention.Add(levelAttention); depth.Add(levelDepth);
        if (context == 0) throw Refuse("no cross-attention (input_blocks.*.1.transformer_blocks.*.attn2): not a text-to-image ControlNet");
        if (!_shapes.ContainsKey($"{p}middle_block.1.proj_in.weight"))
            throw Refuse("its middle block has no attention (middle_block.1.*): not supported");

        // Heads are not in the shapes: the UNet's when the widths agree, else SD's rule (SD 2.x/XL 64 channels per head, SD 1.x 8 heads).
        int[] heads = unet is not null && unet.BlockOutChannels.SequenceEqual(channels) ? unet.NumAttentionHeads
            : channels.Select(c => (linear || context >= 1024) && c % 64 == 0 ? c / 64 : 8).ToArray();
        var config = new JsonObject
        {
            ["_class_name"] = "ControlNetModel",
            ["in_channels"] = (int)convIn[1],
            ["conditioning_channels"] = (int)Shape($"{p}input_hint_block.0.weight")[1],
            ["conditioning_embedding_out_channels"] = Array(embedding),
            ["block_out_channels"] = Array(channels),
            ["down_block_types"] = Array(attention.Select(a => a ? "CrossAttnDownBlock2D" : "DownBlock2D")),
            ["layers_per_block"] = Array(layers),
            ["attention_head_dim"] = Array(heads),
            ["transformer_layers_per_block"] = Array(depth),
            ["cross_attention_dim"] = (int)context,
            ["use_linear_projection"] = linear,
        };
        if (_shapes.TryGetValue($"{p}label_emb.0.0.weight", out var label))
        {
            // SDXL text_time: label_emb.0.0 takes the pooled text + 6 time ids × d; d is the UNet's (SDXL 256).
            int input = (int)label[^1];
            int timeDim = unet is { AdditionEmbedType: "text_time" } ? unet.AdditionTimeEmbedDim
                : input == 2816 ? 256 : throw Refuse($"label_emb.0.0 takes {input} inputs, not SDXL's 2816: load it with its SDXL model");
            config["addition_embed_type"] = "text_time";
            config["addition_time_embed_dim"] = timeDim;
            config["projection_class_embeddings_input_dim"] = input;
        }
        return config;
    }

    InvalidDataException Refuse(string what) => new($"ControlNet {_path}: {what}");

    long[] Shape(string key) => _shapes.TryGetValue(key, out var s) ? s
        : throw Refuse($"the tensor {key} is missing (an incomplete or unusual ControlNet file)");

    SortedSet<int> Indices(string pattern) => CheckpointKeys.Indices(_shapes.Keys, pattern);

    static JsonArray Array<T>(IEnumerable<T> values) => new(values.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray());
}
