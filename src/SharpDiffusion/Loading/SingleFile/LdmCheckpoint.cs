using System.Globalization;
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

/// <summary>What <see cref="StableDiffusionPipeline.FromSingleFile"/> cannot read from the tensors themselves.</summary>
public sealed record SingleFileOptions
{
    /// <summary>The original LDM config (.yaml, e.g. v1-inference.yaml, v2-inference-v.yaml): attention heads
    /// (num_heads / num_head_channels), scale_factor, parameterization "v", betas, image size.</summary>
    public string? OriginalConfig { get; init; }
    /// <summary>A transformers config.json for the text encoder (heads, layers, activation) when it is not one of the
    /// standard sizes (768 = CLIP ViT-L/14, 1024 = OpenCLIP ViT-H).</summary>
    public string? TextEncoderConfig { get; init; }
    /// <summary>SDXL: a transformers config.json for the second text encoder (CLIPTextModelWithProjection) when it is not
    /// OpenCLIP ViT-bigG (width 1280).</summary>
    public string? TextEncoder2Config { get; init; }
    /// <summary>diffusers' from_single_file image_size: the default picture size (SD 1.x 512, SD 2.x 768-v 768, SDXL 1024).</summary>
    public int? ImageSize { get; init; }
    /// <summary>SD3/SD3.5: text encoder files to use with the checkpoint (clip_l, clip_g, t5xxl in transformers' layout,
    /// recognised by their tensors; one replaces the same encoder in the checkpoint), and T5's tokenizer (a spiece.model,
    /// or a folder with one).</summary>
    public IReadOnlyList<string> TextEncoders { get; init; } = [];
    /// <summary>SD3/SD3.5: a diffusers folder whose config.json files (and tokenizers, scheduler config) describe the
    /// checkpoint's components, as diffusers' from_single_file(config=...); each is checked against the weights. For
    /// models of non-standard sizes; without it the configs are inferred from the tensors.</summary>
    public string? DiffusersConfig { get; init; }
    /// <summary>Flux: the VAE file (BFL's ae.safetensors, the 16-channel VAE in the LDM layout) of a transformer file
    /// given as the model, as stable-diffusion.cpp's --vae and ComfyUI's VAE loader take it.</summary>
    public string? Vae { get; init; }
}

/// <summary>
/// A single-file Stable Diffusion checkpoint in the original LDM/CompVis layout, inspected from its tensor names and
/// shapes alone (no data is read): the model family, and the diffusers config of each component inferred from the
/// shapes (channels, levels, layers per block, context dim, 4 or 9 input channels, linear or conv projections), with
/// the optional LDM .yaml for what shapes cannot tell. Every refusal is one line naming the file.
/// </summary>
public sealed partial class LdmCheckpoint
{
    readonly Dictionary<string, long[]> _shapes; // normalised keys (no "state_dict.")

    public string Path { get; }
    public LdmTextEncoder TextEncoderKind { get; }
    /// <summary>diffusers config.json contents, inferred.</summary>
    public JsonObject UNetConfig { get; }
    public JsonObject VaeConfig { get; }
    public JsonObject TextEncoderConfig { get; }
    /// <summary>SDXL: the second text encoder's config (CLIPTextModelWithProjection); null otherwise.</summary>
    public JsonObject? TextEncoder2Config { get; }
    public JsonObject SchedulerConfig { get; }
    /// <summary>An SDXL base checkpoint: conditioner.embedders.0 (CLIP ViT-L) and .1 (OpenCLIP bigG, projected), label_emb in the UNet.</summary>
    public bool IsXL { get; }
    /// <summary>Assumptions made where the file and the options do not say (e.g. SD 2.x's prediction type).</summary>
    public IReadOnlyList<string> Warnings => _warnings;
    readonly List<string> _warnings = [];

    LdmCheckpoint(string path, Dictionary<string, long[]> shapes, SingleFileOptions options)
    {
        Path = path;
        _shapes = shapes;
        var yaml = options.OriginalConfig is { } y ? LdmYaml.Load(y) : null;
        IsXL = Has("conditioner.embedders.");
        IsRefiner = IsXL && IsRefinerLayout;
        RefuseUnknownFamily();
        if (options.TextEncoders.Count > 0 || options.DiffusersConfig is not null)
            throw Refuse($"an SD 1.x/2.x/XL checkpoint (LDM layout): {(options.TextEncoders.Count > 0 ? "--text-encoder files apply" : "a diffusers config folder applies")} " +
                "to SD3/SD3.5 single files only; for this one use --config (its .yaml) and --text-encoder-config");
        TextEncoderKind = Has(LdmKeyMap.OpenClipPrefix) ? LdmTextEncoder.OpenClip : LdmTextEncoder.Clip;
        bool vPrediction = yaml?.String("model.params.parameterization") == "v";
        _imageSize = options.ImageSize;
        TextEncoderConfig = IsRefiner ? InferTextEncoder2(options.TextEncoder2Config ?? options.TextEncoderConfig) : InferTextEncoder(options.TextEncoderConfig, yaml);
        if (IsXL && !IsRefiner)
            TextEncoder2Config = InferTextEncoder2(options.TextEncoder2Config);
        UNetConfig = InferUNet(yaml, vPrediction);
        VaeConfig = InferVae(yaml, vPrediction);
        SchedulerConfig = InferScheduler(yaml, vPrediction);
    }

    /// <summary>Reads the names and shapes of <paramref name="file"/> and infers every component's config.</summary>
    public static LdmCheckpoint Inspect(ITensorFile file, SingleFileOptions? options = null)
    {
        var shapes = new Dictionary<string, long[]>(StringComparer.Ordinal);
        foreach (var h in file.Headers)
            shapes[LdmKeyMap.Normalize(h.Name)] = h.Shape;
        return new LdmCheckpoint(file.Path, shapes, options ?? new SingleFileOptions());
    }

    readonly int? _imageSize;

    InvalidDataException Refuse(string what) => new($"Checkpoint {Path}: {what}");

    /// <summary>Where the first text encoder's keys are: SD 1.x cond_stage_model.transformer., SDXL conditioner.embedders.0.transformer.</summary>
    public string ClipPrefix => IsXL ? LdmKeyMap.XLClipPrefix : LdmKeyMap.ClipPrefix;

    /// <summary>The UNet's sample_size: diffusers' image_size (given) over the VAE's factor; else the yaml's latent size,
    /// or the family's (SD 1.x 64, SD 2.x 768-v 96, SDXL 1024 px / 8 = 128).</summary>
    int LatentSize(LdmYaml? yaml, bool vPrediction) =>
        _imageSize is int pixels ? Math.Max(1, pixels / VaeFactor())
        : IsXL ? 1024 / VaeFactor()
        : yaml?.Int("model.params.image_size") ?? yaml?.Int("model.params.unet_config.params.image_size") ?? (vPrediction ? 96 : 64);

    bool Has(string prefix) => _shapes.Keys.Any(k => k.StartsWith(prefix, StringComparison.Ordinal));

    long[] Shape(string key) => _shapes.TryGetValue(key, out var s) ? s
        : throw Refuse($"the tensor {key} is missing (an incomplete or unusual checkpoint)");

    long Dim(string key, int dim, int rank = -1)
    {
        var s = Shape(key);
        if ((rank >= 0 && s.Length != rank) || dim >= s.Length)
            throw Refuse($"{key} has shape [{string.Join(", ", s)}], which does not fit a Stable Diffusion checkpoint");
        return s[dim];
    }

    /// <summary>Distinct integers at <paramref name="pattern"/>'s group 1 among the keys.</summary>
    SortedSet<int> Indices(string pattern)
    {
        var regex = new Regex("^" + pattern, RegexOptions.CultureInvariant);
        var found = new SortedSet<int>();
        foreach (string k in _shapes.Keys)
            if (regex.Match(k) is { Success: true } m && int.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out int v))
                found.Add(v);
        return found;
    }

    void RefuseUnknownFamily()
    {
        if (_shapes.Count == 0)
            throw Refuse("it holds no tensors");
        if (IsXL && !IsRefiner && !Has(LdmKeyMap.XLClipPrefix))
            throw Refuse("an SDXL checkpoint without its first text encoder (conditioner.embedders.0.transformer.*)");
        if (IsXL && !Has(BigGPrefix + "text_projection"))
            throw Refuse($"an SDXL checkpoint whose OpenCLIP bigG text encoder has no text_projection ({BigGPrefix}text_projection)");
        if (!Has(LdmKeyMap.UNetPrefix))
        {
            string found = string.Join(", ", _shapes.Keys.GroupBy(k => k.Split('.')[0]).OrderByDescending(g => g.Count()).Take(4).Select(g => $"{g.Key}.* ({g.Count()})"));
            string hint = _shapes.Keys.Any(k => k.Contains("down_blocks.", StringComparison.Ordinal) || k.StartsWith("text_model.", StringComparison.Ordinal))
                ? " — it looks like one diffusers component (down_blocks.*, text_model.*), not a whole checkpoint: load its diffusers folder instead"
                : Has("lora_") || _shapes.Keys.Any(k => k.Contains("lora_down", StringComparison.Ordinal)) ? " — it looks like a LoRA, not a checkpoint"
                : "";
            throw Refuse($"no UNet keys (model.diffusion_model.*); found {found}{hint}");
        }
        if (!IsXL && Has(LdmKeyMap.UNetPrefix + "label_emb."))
            throw Refuse("its UNet has a class/label embedding (model.diffusion_model.label_emb.*), as unCLIP or upscaler models: not supported");
        if (!_shapes.ContainsKey(LdmKeyMap.UNetPrefix + "input_blocks.0.0.weight"))
            throw Refuse("no UNet input convolution (model.diffusion_model.input_blocks.0.0.weight): not a Stable Diffusion 1.x/2.x UNet");
        if (!Has(LdmKeyMap.VaePrefix))
            throw Refuse("no VAE keys (first_stage_model.*): give a checkpoint that includes its VAE");
        if (!IsXL && !Has(LdmKeyMap.ClipPrefix) && !Has(LdmKeyMap.OpenClipPrefix))
            throw Refuse(Has("cond_stage_model.")
                ? $"an unknown text encoder ({_shapes.Keys.First(k => k.StartsWith("cond_stage_model.", StringComparison.Ordinal))}): only CLIP (cond_stage_model.transformer.*) and OpenCLIP (cond_stage_model.model.*) are supported"
                : "no text encoder keys (cond_stage_model.transformer.* or cond_stage_model.model.*)");
    }

    // ---- UNet ----

    JsonObject InferUNet(LdmYaml? yaml, bool vPrediction)
    {
        const string p = LdmKeyMap.UNetPrefix;
        var convIn = Shape(p + "input_blocks.0.0.weight");
        if (convIn.Length != 4) throw Refuse($"{p}input_blocks.0.0.weight has shape [{string.Join(", ", convIn)}], not a convolution");
        var downsamplers = Indices(Regex.Escape(p) + @"input_blocks\.(\d+)\.0\.op\.weight");
        int levels = downsamplers.Count + 1;
        var layers = new int[levels];
        var channels = new int[levels];
        var attention = new bool[levels];
        var depth = new int[levels];
        bool linear = false;
        long context = 0;
        int index = 1;
        for (int i = 0; i < levels; i++)
        {
            int first = index;
            while (_shapes.ContainsKey($"{p}input_blocks.{index}.0.in_layers.0.weight"))
                index++;
            layers[i] = index - first;
            if (layers[i] == 0)
                throw Refuse($"UNet level {i} has no resnet at {p}input_blocks.{first}.0.*: an unusual layout");
            channels[i] = (int)Dim($"{p}input_blocks.{first}.0.out_layers.3.weight", 0);
            string attn = $"{p}input_blocks.{first}.1.";
            attention[i] = _shapes.ContainsKey(attn + "proj_in.weight");
            if (attention[i])
            {
                linear = Shape(attn + "proj_in.weight").Length == 2;
                depth[i] = Indices(Regex.Escape(attn) + @"transformer_blocks\.(\d+)\.").Count;
                context = Dim(attn + "transformer_blocks.0.attn2.to_k.weight", 1);
            }
            if (i < levels - 1)
            {
                if (!downsamplers.Contains(index))
                    throw Refuse($"expected the downsampler of UNet level {i} at {p}input_blocks.{index}.0.op: an unusual layout");
                index++;
            }
        }
        if (context == 0)
            throw Refuse("its UNet has no cross-attention (transformer_blocks.*.attn2): not a text-to-image Stable Diffusion UNet");
        if (!_shapes.ContainsKey(p + "middle_block.1.proj_in.weight"))
            throw Refuse("its UNet middle block has no attention (model.diffusion_model.middle_block.1.*): not supported");

        var upTypes = new string[levels];
        int output = 0;
        for (int i = 0; i < levels; i++)
        {
            upTypes[i] = _shapes.ContainsKey($"{p}output_blocks.{output}.1.proj_in.weight") ? "CrossAttnUpBlock2D" : "UpBlock2D";
            output += layers[levels - 1 - i] + 1;
        }

        var heads = Heads(yaml, channels, context, linear);
        int latent = LatentSize(yaml, vPrediction);
        var config = new JsonObject
        {
            ["_class_name"] = "UNet2DConditionModel",
            ["act_fn"] = "silu",
            ["attention_head_dim"] = heads.Distinct().Count() == 1 ? heads[0] : Array(heads),
            ["block_out_channels"] = Array(channels),
            ["center_input_sample"] = false,
            ["cross_attention_dim"] = (int)context,
            ["down_block_types"] = Array(attention.Select(a => a ? "CrossAttnDownBlock2D" : "DownBlock2D")),
            ["downsample_padding"] = 1,
            ["flip_sin_to_cos"] = true,
            ["freq_shift"] = 0,
            ["in_channels"] = (int)convIn[1],
            ["layers_per_block"] = layers.Distinct().Count() == 1 ? layers[0] : Array(layers),
            ["mid_block_scale_factor"] = 1,
            ["norm_eps"] = 1e-5,
            ["norm_num_groups"] = 32,
            ["out_channels"] = (int)Dim(p + "out.2.weight", 0),
            ["conv_in_kernel"] = (int)convIn[2],
            ["conv_out_kernel"] = (int)Dim(p + "out.2.weight", 2),
            ["sample_size"] = latent,
            // Levels without attention say 1, as diffusers' configs do (SDXL: [1, 2, 10]).
            ["transformer_layers_per_block"] = depth.Select(d => Math.Max(1, d)).Distinct().Count() == 1 ? Math.Max(1, depth.Max()) : Array(depth.Select(d => Math.Max(1, d))),
            ["up_block_types"] = Array(upTypes),
            // SD 2.1 sets it; it only changes half-precision attention (q·k in float32), so it is safe for every SD 2.x.
            ["upcast_attention"] = TextEncoderKind == LdmTextEncoder.OpenClip,
            ["use_linear_projection"] = linear,
        };
        if (IsXL)
        {
            // text_time: label_emb.0.0 takes pooled text (bigG's projection width) + 6 time ids × d (a refiner: 5).
            long additionInput = Dim(p + "label_emb.0.0.weight", 1, rank: 2);
            long pooled = Dim(BigGPrefix + "text_projection", 1, rank: 2);
            if ((additionInput - pooled) <= 0 || (additionInput - pooled) % TimeIdCount != 0)
                throw Refuse($"label_emb.0.0 takes {additionInput} inputs, which is not the pooled text width {pooled} + {TimeIdCount} time ids");
            config["addition_embed_type"] = "text_time";
            config["addition_time_embed_dim"] = (int)((additionInput - pooled) / TimeIdCount);
            config["projection_class_embeddings_input_dim"] = (int)additionInput;
            config["upcast_attention"] = false;
        }
        return config;
    }

    /// <summary>Heads per level: the yaml's num_head_channels (LDM: it wins when set) or num_heads (a number or a list);
    /// else SD's own choice for the family: SD 2.x 64 channels per head, SD 1.x 8 heads.</summary>
    int[] Heads(LdmYaml? yaml, int[] channels, long context, bool linear)
    {
        string u = IsXL ? "model.params.network_config.params." : "model.params.unet_config.params.";
        if (yaml?.Int(u + "num_head_channels") is int perHead and > 0)
            return channels.Select(c => c % perHead == 0 ? c / perHead
                : throw Refuse($"num_head_channels {perHead} in {yaml.Source} does not divide the UNet's {c} channels")).ToArray();
        if (yaml?.IntOrList(u + "num_heads") is { } given && given.All(h => h > 0))
        {
            if (given.Length == 1) return channels.Select(_ => given[0]).ToArray();
            if (given.Length == channels.Length) return given;
            throw Refuse($"num_heads in {yaml.Source} lists {given.Length} values for {channels.Length} UNet levels");
        }
        bool sd2 = context == 1024 || linear; // SD 2.x and SDXL: 64 channels per head
        if (sd2 && channels.All(c => c % 64 == 0))
            return channels.Select(c => c / 64).ToArray();
        if (context is not (768 or 1024))
            _warnings.Add($"{System.IO.Path.GetFileName(Path)}: UNet attention heads assumed to be 8 per level (the SD 1.x default); " +
                "if the model differs, give its LDM .yaml (--config) with num_heads or num_head_channels");
        return channels.Select(_ => 8).ToArray();
    }

    // ---- VAE ----

    /// <summary>The VAE's downsampling: 2^(levels − 1).</summary>
    int VaeFactor() => 1 << (Indices(Regex.Escape(LdmKeyMap.VaePrefix) + @"encoder\.down\.(\d+)\.").Count - 1);

    JsonObject InferVae(LdmYaml? yaml, bool vPrediction)
    {
        const string p = LdmKeyMap.VaePrefix;
        var levels = Indices(Regex.Escape(p) + @"encoder\.down\.(\d+)\.").Count;
        if (levels == 0) throw Refuse("no VAE encoder blocks (first_stage_model.encoder.down.*)");
        int layers = Indices(Regex.Escape(p) + @"encoder\.down\.0\.block\.(\d+)\.").Count;
        var channels = Enumerable.Range(0, levels).Select(i => (int)Dim($"{p}encoder.down.{i}.block.0.conv2.weight", 0)).ToArray();
        int latent = LatentSize(yaml, vPrediction);
        double scale = yaml?.Double("model.params.scale_factor") ?? (IsXL ? 0.13025 : 0.18215);
        return new JsonObject
        {
            ["_class_name"] = "AutoencoderKL",
            ["act_fn"] = "silu",
            ["block_out_channels"] = Array(channels),
            ["down_block_types"] = Array(Enumerable.Repeat("DownEncoderBlock2D", levels)),
            ["in_channels"] = (int)Dim(p + "encoder.conv_in.weight", 1),
            ["latent_channels"] = (int)Dim(p + "decoder.conv_in.weight", 1),
            ["layers_per_block"] = layers,
            ["mid_block_add_attention"] = _shapes.ContainsKey(p + "encoder.mid.attn_1.q.weight"),
            ["norm_num_groups"] = 32,
            ["out_channels"] = (int)Dim(p + "decoder.conv_out.weight", 0),
            ["sample_size"] = latent << (levels - 1),
            ["scaling_factor"] = scale,
            ["force_upcast"] = true,
            ["up_block_types"] = Array(Enumerable.Repeat("UpDecoderBlock2D", levels)),
        };
    }

    // ---- text encoder ----

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

    // ---- scheduler ----

    JsonObject InferScheduler(LdmYaml? yaml, bool vPrediction)
    {
        double start = yaml?.Double("model.params.linear_start") ?? 0.00085;
        double end = yaml?.Double("model.params.linear_end") ?? 0.012;
        int steps = yaml?.Int("model.params.timesteps") ?? 1000;
        if (IsXL)
            // stabilityai/stable-diffusion-xl-base-1.0's scheduler_config.json (Euler, leading spacing), betas from the yaml.
            return new JsonObject
            {
                ["_class_name"] = "EulerDiscreteScheduler",
                ["beta_end"] = end,
                ["beta_schedule"] = "scaled_linear",
                ["beta_start"] = start,
                ["interpolation_type"] = "linear",
                ["num_train_timesteps"] = steps,
                ["prediction_type"] = "epsilon",
                ["sample_max_value"] = 1.0,
                ["steps_offset"] = 1,
                ["timestep_spacing"] = "leading",
                ["trained_betas"] = null,
                ["use_karras_sigmas"] = false,
            };
        if (TextEncoderKind == LdmTextEncoder.OpenClip && yaml is null)
            _warnings.Add($"{System.IO.Path.GetFileName(Path)} is an SD 2.x model: whether it predicts noise (SD 2.x base, 512px) or v (768-v) cannot be told " +
                "from its weights; assumed noise (epsilon). For a 768-v model give its v2-inference-v.yaml with --config, or --scheduler-option prediction_type=v_prediction");
        if (vPrediction)
            // SD 2.x 768-v: stabilityai/stable-diffusion-2's scheduler (DDIM, v-prediction), betas from the yaml.
            return new JsonObject
            {
                ["_class_name"] = "DDIMScheduler",
                ["beta_end"] = end,
                ["beta_schedule"] = "scaled_linear",
                ["beta_start"] = start,
                ["clip_sample"] = false,
                ["num_train_timesteps"] = steps,
                ["prediction_type"] = "v_prediction",
                ["set_alpha_to_one"] = false,
                ["skip_prk_steps"] = true,
                ["steps_offset"] = 1,
                ["trained_betas"] = null,
            };
        // CompVis/stable-diffusion-v1-4's scheduler_config.json (PNDM), the SD default.
        return new JsonObject
        {
            ["_class_name"] = "PNDMScheduler",
            ["beta_end"] = end,
            ["beta_schedule"] = "scaled_linear",
            ["beta_start"] = start,
            ["num_train_timesteps"] = steps,
            ["set_alpha_to_one"] = false,
            ["skip_prk_steps"] = true,
            ["steps_offset"] = 1,
            ["trained_betas"] = null,
            ["clip_sample"] = false,
        };
    }

    static JsonArray Array<T>(IEnumerable<T> values) => new(values.Select(v => JsonValue.Create(v)).ToArray<JsonNode?>());
}
