using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using SharpDiffusion.Text;

namespace SharpDiffusion.Loading.SingleFile;

/// <summary>
/// A Stability SD3/SD3.5 single file (sd3_medium*.safetensors, sd3.5_medium.safetensors, sd3.5_large(_turbo).safetensors)
/// and the text encoder files given with it, inspected from names and shapes alone (no data read): the MMDiT under
/// <c>model.diffusion_model.</c> (<see cref="MmditKeyMap"/>), the 16-channel VAE under <c>first_stage_model.</c>
/// (<see cref="LdmKeyMap.Vae"/>), the text encoders in the file and in <see cref="SingleFileOptions.TextEncoders"/> (a
/// separate file replaces one in the checkpoint). Each component's diffusers config is inferred from the shapes, or taken
/// from <see cref="SingleFileOptions.DiffusersConfig"/>'s folder (diffusers' from_single_file config=) and checked
/// against them; every refusal is one line naming the file, the value and the fix.
/// </summary>
public sealed class Sd3Checkpoint
{
    const string P = MmditKeyMap.TransformerPrefix;
    readonly Dictionary<string, long[]> _shapes;

    public string Path { get; }
    public JsonObject TransformerConfig { get; }
    public JsonObject VaeConfig { get; }
    public JsonObject SchedulerConfig { get; }
    /// <summary>Each text encoder found (in the checkpoint or a given file) and its config; CLIP-L and bigG are required, T5 optional.</summary>
    public IReadOnlyDictionary<Sd3TextEncoder, (TextEncoderFile File, JsonObject Config)> TextEncoders { get; }
    /// <summary>The folder holding T5's spiece.model (and perhaps tokenizer_config.json); null without a T5.</summary>
    public string? T5TokenizerFolder { get; }
    /// <summary>The CLIP tokenizer folders of <see cref="SingleFileOptions.DiffusersConfig"/>, when it has them; else the bundled ones serve.</summary>
    public string? ClipTokenizerFolder { get; }
    public string? ClipTokenizer2Folder { get; }

    /// <summary>Whether <paramref name="file"/> holds an MMDiT in the Stability layout (<c>model.diffusion_model.joint_blocks.</c>).</summary>
    public static bool IsSd3(ITensorFile file) =>
        file.Headers.Any(h => LdmKeyMap.Normalize(h.Name).StartsWith(P + "joint_blocks.", StringComparison.Ordinal));

    public static Sd3Checkpoint Inspect(ITensorFile file, SingleFileOptions? options = null)
    {
        options ??= new SingleFileOptions();
        var shapes = file.Headers.ToDictionary(h => LdmKeyMap.Normalize(h.Name), h => h.Shape, StringComparer.Ordinal);
        var encoders = new Dictionary<Sd3TextEncoder, (TextEncoderFile, IReadOnlyDictionary<string, long[]>)>();
        foreach (var found in TextEncoderFile.Find(file.Path, shapes))
            encoders[found.Kind] = (found, shapes);
        string? t5Tokenizer = null;
        foreach (string path in options.TextEncoders)
        {
            if (Directory.Exists(path) || path.EndsWith(".model", StringComparison.OrdinalIgnoreCase))
            {
                t5Tokenizer = Directory.Exists(path) ? path : System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
                if (!File.Exists(System.IO.Path.Combine(t5Tokenizer, T5Tokenizer.SpieceFile)))
                    throw new FileNotFoundException($"{path}: no {T5Tokenizer.SpieceFile} there; a T5 tokenizer is the spiece.model of the model's tokenizer_3 folder.");
                continue;
            }
            using var encoderFile = TensorFiles.Open(path);
            var encoderShapes = encoderFile.Headers.ToDictionary(h => LdmKeyMap.Normalize(h.Name), h => h.Shape, StringComparer.Ordinal);
            var kinds = TextEncoderFile.Find(path, encoderShapes);
            if (kinds.Count == 0)
                throw new InvalidDataException($"{path}: no text encoder found (CLIP's embeddings.token_embedding.weight or T5's encoder.block.0.layer.0.SelfAttention.q.weight); " +
                    "give clip_l, clip_g or t5xxl files in transformers' layout.");
            foreach (var kind in kinds) encoders[kind.Kind] = (kind, encoderShapes);
        }
        return new Sd3Checkpoint(file.Path, shapes, encoders, options, t5Tokenizer);
    }

    Sd3Checkpoint(string path, Dictionary<string, long[]> shapes, Dictionary<Sd3TextEncoder, (TextEncoderFile File, IReadOnlyDictionary<string, long[]> Shapes)> encoders,
        SingleFileOptions options, string? t5Tokenizer)
    {
        Path = path;
        _shapes = shapes;
        string? config = options.DiffusersConfig;
        if (config is not null && !Directory.Exists(config))
            throw new DirectoryNotFoundException($"{config}: the single-file config must be a diffusers folder (model_index.json, transformer/config.json, ...).");
        if (!Has(P + "joint_blocks.0."))
            throw Refuse("no MMDiT keys (model.diffusion_model.joint_blocks.*): not a Stability SD3/SD3.5 single file");
        if (!Has(MmditKeyMap.VaePrefix))
            throw Refuse("no VAE keys (first_stage_model.*): SD3 single files carry their VAE; give one that does, or use the diffusers folder");

        bool transformerGiven = config is not null && File.Exists(System.IO.Path.Combine(config, "transformer", "config.json"));
        TransformerConfig = Given(config, "transformer", InferTransformer(headsRequired: !transformerGiven), TransformerFixedKeys, path);
        VaeConfig = Given(config, "vae", InferVae(), ["latent_channels", "block_out_channels", "layers_per_block", "in_channels", "out_channels", "use_quant_conv", "use_post_quant_conv"], path);

        var texts = new Dictionary<Sd3TextEncoder, (TextEncoderFile, JsonObject)>();
        foreach (var (kind, (file, encoderShapes)) in encoders.OrderBy(e => e.Key))
        {
            string folder = file.Folder;
            bool given = config is not null && File.Exists(System.IO.Path.Combine(config, folder, "config.json"));
            var inferred = given ? null : file.InferConfig(encoderShapes);
            var fixedValues = given ? FixedValues(file, encoderShapes) : inferred!;
            texts[kind] = (file, given ? Given(config, folder, fixedValues, TextEncoderFile.FixedKeys[kind], file.Path) : inferred!);
        }
        foreach (var required in (Sd3TextEncoder[])[Sd3TextEncoder.ClipL, Sd3TextEncoder.ClipG])
            if (!texts.ContainsKey(required))
                throw Refuse($"no {(required == Sd3TextEncoder.ClipL ? "CLIP-L (text_encoders.clip_l.*)" : "CLIP-G (text_encoders.clip_g.*)")} text encoder in the file: " +
                    $"give it with --text-encoder {(required == Sd3TextEncoder.ClipL ? "clip_l.safetensors" : "clip_g.safetensors")}");
        TextEncoders = texts;

        int joint = TransformerConfig["joint_attention_dim"]!.GetValue<int>();
        if (texts.TryGetValue(Sd3TextEncoder.T5, out var t5))
        {
            int dModel = t5.Item2["d_model"]!.GetValue<int>();
            if (dModel != joint)
                throw new InvalidDataException($"{t5.Item1.Path}: the T5's d_model is {dModel} but the transformer's joint_attention_dim is {joint}: the T5 belongs to another model (SD3 takes T5-XXL, 4096).");
            T5TokenizerFolder = t5Tokenizer ?? FindT5Tokenizer(config, t5.Item1.Path)
                ?? throw new FileNotFoundException($"{t5.Item1.Path}: T5's tokenizer (spiece.model) was not found beside it or beside {path}: download tokenizer_3/spiece.model " +
                    "of stabilityai/stable-diffusion-3.5-medium and give it with --text-encoder spiece.model (or put it beside the T5 file).");
        }
        ClipTokenizerFolder = TokenizerFolder(config, "tokenizer");
        ClipTokenizer2Folder = TokenizerFolder(config, "tokenizer_2");
        SchedulerConfig = config is not null && File.Exists(System.IO.Path.Combine(config, "scheduler", "scheduler_config.json"))
            ? (JsonObject)JsonNode.Parse(File.ReadAllText(System.IO.Path.Combine(config, "scheduler", "scheduler_config.json")))!
            : new JsonObject
            {
                // stabilityai/stable-diffusion-3(.5)-*'s scheduler_config.json.
                ["_class_name"] = "FlowMatchEulerDiscreteScheduler",
                ["base_image_seq_len"] = 256,
                ["base_shift"] = 0.5,
                ["max_image_seq_len"] = 4096,
                ["max_shift"] = 1.15,
                ["num_train_timesteps"] = 1000,
                ["shift"] = 3.0,
                ["use_dynamic_shifting"] = false,
            };
    }

    InvalidDataException Refuse(string what) => new($"Checkpoint {Path}: {what}");

    bool Has(string prefix) => _shapes.Keys.Any(k => k.StartsWith(prefix, StringComparison.Ordinal));

    long[] Shape(string key) => _shapes.TryGetValue(key, out var s) ? s : throw Refuse($"the tensor {key} is missing (an incomplete or unusual checkpoint)");

    SortedSet<int> Indices(string pattern) => CheckpointKeys.Indices(_shapes.Keys, pattern);

    static readonly string[] TransformerFixedKeys = ["num_layers", "in_channels", "out_channels", "patch_size", "joint_attention_dim", "caption_projection_dim",
        "pooled_projection_dim", "pos_embed_max_size", "dual_attention_layers", "qk_norm"];

    /// <summary>SD3Transformer2DModel's config from the shapes: D = pos_embed's width, heads of 64 channels (SD3 and
    /// SD3.5: heads = depth) unless the qk norm's weight gives the head size. Without <paramref name="headsRequired"/> (a
    /// config gives them) a width the heads cannot be told from is left to the config.</summary>
    JsonObject InferTransformer(bool headsRequired)
    {
        var posEmbed = Shape(P + "pos_embed");                     // [1, max², D]
        var xEmbedder = Shape(P + "x_embedder.proj.weight");       // [D, C, p, p]
        var context = Shape(P + "context_embedder.weight");        // [D, joint_attention_dim]
        var pooled = Shape(P + "y_embedder.mlp.0.weight");         // [D, pooled_projection_dim]
        var final = Shape(P + "final_layer.linear.weight");        // [p·p·C_out, D]
        if (posEmbed.Length != 3 || xEmbedder.Length != 4)
            throw Refuse($"pos_embed [{string.Join(", ", posEmbed)}] or x_embedder.proj.weight [{string.Join(", ", xEmbedder)}] does not fit an MMDiT");
        long dim = posEmbed[2], patch = xEmbedder[2];
        int max = (int)Math.Round(Math.Sqrt(posEmbed[1]));
        if ((long)max * max != posEmbed[1])
            throw Refuse($"pos_embed holds {posEmbed[1]} positions, not a square table");
        var layers = Indices(Regex.Escape(P) + @"joint_blocks\.(\d+)\.");
        if (layers.Count != layers.Max + 1)
            throw Refuse($"joint_blocks {string.Join(", ", layers)} are not numbered 0 to {layers.Count - 1}: blocks are missing");
        var dual = Indices(Regex.Escape(P) + @"joint_blocks\.(\d+)\.x_block\.attn2\.");
        bool qkNorm = _shapes.ContainsKey(P + "joint_blocks.0.x_block.attn.ln_q.weight");
        long headDim = qkNorm ? Shape(P + "joint_blocks.0.x_block.attn.ln_q.weight")[0] : 64;
        if (dim % headDim != 0 && headsRequired)
            throw Refuse($"its transformer is {dim} wide, not a multiple of {headDim}, so its attention heads cannot be told from the weights; " +
                "give the model's diffusers folder (its transformer/config.json) as the single-file config");
        return new JsonObject
        {
            ["_class_name"] = "SD3Transformer2DModel",
            ["attention_head_dim"] = (int)headDim,
            ["caption_projection_dim"] = (int)context[0],
            ["dual_attention_layers"] = new JsonArray(dual.Select(i => (JsonNode)i).ToArray()),
            ["in_channels"] = (int)xEmbedder[1],
            ["joint_attention_dim"] = (int)context[1],
            ["num_attention_heads"] = (int)(dim / headDim),
            ["num_layers"] = layers.Count,
            ["out_channels"] = (int)(final[0] / (patch * patch)),
            ["patch_size"] = (int)patch,
            ["pooled_projection_dim"] = (int)pooled[1],
            ["pos_embed_max_size"] = max,
            ["qk_norm"] = qkNorm ? "rms_norm" : null,
            ["sample_size"] = 128, // SD3 and SD3.5: 1024 px / 8
        };
    }

    /// <summary>The SD3 VAE (AutoencoderKL, 16 latent channels, no quant convs) from the LDM shapes, with SD3's latent
    /// scaling 1.5305 and shift 0.0609 and 32 norm groups.</summary>
    JsonObject InferVae()
    {
        const string v = MmditKeyMap.VaePrefix;
        int levels = Indices(Regex.Escape(v) + @"encoder\.down\.(\d+)\.").Count;
        if (levels == 0) throw Refuse("no VAE encoder blocks (first_stage_model.encoder.down.*)");
        var channels = Enumerable.Range(0, levels).Select(i => (JsonNode)(int)Shape($"{v}encoder.down.{i}.block.0.conv2.weight")[0]).ToArray();
        return new JsonObject
        {
            ["_class_name"] = "AutoencoderKL",
            ["act_fn"] = "silu",
            ["block_out_channels"] = new JsonArray(channels),
            ["down_block_types"] = new JsonArray(Enumerable.Repeat((JsonNode)"DownEncoderBlock2D", levels).Select(n => n.DeepClone()).ToArray()),
            ["force_upcast"] = true,
            ["in_channels"] = (int)Shape(v + "encoder.conv_in.weight")[1],
            ["latent_channels"] = (int)Shape(v + "decoder.conv_in.weight")[1],
            ["layers_per_block"] = Indices(Regex.Escape(v) + @"encoder\.down\.0\.block\.(\d+)\.").Count,
            ["mid_block_add_attention"] = _shapes.ContainsKey(v + "encoder.mid.attn_1.q.weight"),
            ["norm_num_groups"] = 32,
            ["out_channels"] = (int)Shape(v + "decoder.conv_out.weight")[0],
            ["sample_size"] = 1024,
            ["scaling_factor"] = 1.5305,
            ["shift_factor"] = 0.0609,
            ["up_block_types"] = new JsonArray(Enumerable.Repeat((JsonNode)"UpDecoderBlock2D", levels).Select(n => n.DeepClone()).ToArray()),
            ["use_post_quant_conv"] = _shapes.ContainsKey(v + "post_quant_conv.weight"),
            ["use_quant_conv"] = _shapes.ContainsKey(v + "quant_conv.weight"),
        };
    }

    /// <summary>The values the weights fix of a text encoder whose heads a config gives (CLIP widths that are not
    /// multiples of 64 cannot be inferred whole).</summary>
    static JsonObject FixedValues(TextEncoderFile file, IReadOnlyDictionary<string, long[]> shapes)
    {
        if (file.Kind == Sd3TextEncoder.T5) return file.InferConfig(shapes);
        long[] Shape(string name) => shapes.TryGetValue(file.KeyOf(name), out var s) ? s
            : throw new InvalidDataException($"{file.Path}: the {file.What} text encoder has no tensor {file.KeyOf(name)} (an incomplete file?).");
        var token = Shape("text_model.embeddings.token_embedding.weight");
        var layer = new Regex("^" + Regex.Escape(file.KeyOf("text_model.encoder.layers.")) + @"(\d+)\.", RegexOptions.CultureInvariant);
        return new JsonObject
        {
            ["hidden_size"] = (int)token[1],
            ["intermediate_size"] = (int)Shape("text_model.encoder.layers.0.mlp.fc1.weight")[0],
            ["max_position_embeddings"] = (int)Shape("text_model.embeddings.position_embedding.weight")[0],
            ["num_hidden_layers"] = shapes.Keys.Select(k => layer.Match(k)).Where(m => m.Success).Select(m => m.Groups[1].Value).Distinct().Count(),
            ["projection_dim"] = (int)(shapes.TryGetValue(file.KeyOf("text_projection.weight"), out var p) ? p[0] : token[1]),
            ["vocab_size"] = (int)token[0],
        };
    }

    /// <summary>The component's config.json from the config folder, when it has one, checked against what the weights
    /// fix; else the inferred config.</summary>
    static JsonObject Given(string? folder, string component, JsonObject inferred, string[] fixedKeys, string weights)
    {
        string path = folder is null ? "" : System.IO.Path.Combine(folder, component, "config.json");
        if (folder is null || !File.Exists(path)) return inferred;
        var given = JsonNode.Parse(File.ReadAllText(path)) as JsonObject
            ?? throw new InvalidDataException($"{path}: not a JSON object");
        foreach (string key in fixedKeys)
        {
            if (!inferred.ContainsKey(key)) continue;
            var value = given[key] ?? Default(key, given);
            string want = inferred[key]?.ToJsonString() ?? "null", have = value?.ToJsonString() ?? "null";
            if (want != have)
                throw new InvalidDataException($"{path}: {key} is {have} but the weights in {weights} have {want}: the config belongs to another model.");
        }
        return given;
    }

    // diffusers' defaults for keys a config may leave out.
    static JsonNode? Default(string key, JsonObject config) => key switch
    {
        "dual_attention_layers" => new JsonArray(),
        "out_channels" => config["in_channels"]?.DeepClone(),
        "use_quant_conv" or "use_post_quant_conv" => true,
        _ => null,
    };

    static string? TokenizerFolder(string? config, string name) =>
        config is not null && File.Exists(System.IO.Path.Combine(config, name, "vocab.json")) ? System.IO.Path.Combine(config, name) : null;

    /// <summary>T5's tokenizer: the config folder's tokenizer_3, else a spiece.model beside the T5 weights or the checkpoint
    /// (or in a tokenizer_3 folder there or one level up).</summary>
    string? FindT5Tokenizer(string? config, string t5Path)
    {
        var candidates = new List<string>();
        if (config is not null) candidates.Add(System.IO.Path.Combine(config, "tokenizer_3"));
        foreach (string file in (string[])[t5Path, Path])
        {
            string dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(file))!;
            candidates.Add(dir);
            candidates.Add(System.IO.Path.Combine(dir, "tokenizer_3"));
            if (System.IO.Path.GetDirectoryName(dir) is { } parent)  // a diffusers text_encoder_3/ given as a file: its tokenizer_3/ beside
                candidates.Add(System.IO.Path.Combine(parent, "tokenizer_3"));
        }
        return candidates.FirstOrDefault(d => File.Exists(System.IO.Path.Combine(d, T5Tokenizer.SpieceFile)));
    }
}
