using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace SharpDiffusion.Loading.SingleFile;

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
    SortedSet<int> Indices(string pattern) => CheckpointKeys.Indices(_shapes.Keys, pattern);

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
