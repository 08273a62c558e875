using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using SharpDiffusion.Configuration;
using SharpDiffusion.Models.Clip;
using SharpDiffusion.Models.T5;
using SharpDiffusion.Models.Transformers;
using SharpDiffusion.Models.Vae;
using SharpDiffusion.Schedulers;
using SharpDiffusion.Text;

namespace SharpDiffusion.Loading.SingleFile;

/// <summary>
/// A Flux.1 pipeline as the files stable-diffusion.cpp and ComfyUI users download, inspected from names and shapes alone
/// (no data read): the transformer in BFL's layout (flux1-dev/flux1-schnell .safetensors, float8, .gguf:
/// <see cref="BflKeyMap"/>), CLIP-L and T5 (clip_l.safetensors, t5xxl_fp16/t5xxl_fp8_e4m3fn.safetensors, recognised by
/// their tensors: <see cref="TextEncoderFile"/>; also when the transformer file carries them), the VAE (BFL's
/// ae.safetensors: the 16-channel AutoencoderKL in the LDM layout, or a diffusers-layout file), CLIP's tokenizer (the
/// bundled CLIP-L one) and T5's spiece.model (given, or beside the T5 file). dev or schnell is read from the tensors
/// (guidance_in present = dev): the scheduler config and T5 length follow. Configs are inferred from the shapes, or
/// read from <see cref="SingleFileOptions.DiffusersConfig"/>'s folder (diffusers' from_single_file config=). Each
/// missing part is refused in one line naming the file to download.
/// </summary>
public sealed class FluxComponentFiles
{
    const string Download = "(comfyanonymous/flux_text_encoders)";

    public required string TransformerPath { get; init; }
    public required FluxTransformer2DConfig Transformer { get; init; }
    public required TextEncoderFile Clip { get; init; }
    public required ClipTextConfig ClipConfig { get; init; }
    public required TextEncoderFile T5 { get; init; }
    public required T5Config T5Config { get; init; }
    public required string VaePath { get; init; }
    public required AutoencoderKLConfig VaeConfig { get; init; }
    /// <summary>Where the VAE config came from, for errors: the folder's vae/config.json or the VAE file.</summary>
    public required string VaeConfigSource { get; init; }
    /// <summary>The folder holding T5's spiece.model (and perhaps tokenizer_config.json).</summary>
    public required string T5TokenizerFolder { get; init; }
    /// <summary>The config folder's CLIP tokenizer, when it has one; else the bundled CLIP-L tokenizer serves.</summary>
    public string? ClipTokenizerFolder { get; init; }
    public required SchedulerConfig SchedulerConfig { get; init; }

    /// <summary>Flux.1 dev (guidance-distilled: guidance_in) rather than schnell.</summary>
    public bool IsDev => Transformer.GuidanceEmbeds;

    /// <summary>Whether the file at <paramref name="path"/> holds a Flux.1 transformer in BFL's layout.</summary>
    public static bool IsFluxTransformer(ITensorFile file) => BflKeyMap.IsFlux(file.Headers.Select(h => h.Name));

    /// <summary>The parts of a Flux pipeline whose transformer is <paramref name="transformerPath"/>: the text encoders and
    /// T5 tokenizer of <see cref="SingleFileOptions.TextEncoders"/> (or in the transformer file), the VAE of
    /// <see cref="SingleFileOptions.Vae"/>.</summary>
    public static FluxComponentFiles Inspect(string transformerPath, SingleFileOptions options)
    {
        string? config = options.DiffusersConfig;
        if (config is not null && !Directory.Exists(config))
            throw new DirectoryNotFoundException($"{config}: the single-file config must be a diffusers folder (model_index.json, transformer/config.json, ...).");
        string? ConfigFile(string component, string name = "config.json") =>
            config is not null && File.Exists(Path.Combine(config, component, name)) ? Path.Combine(config, component, name) : null;

        FluxTransformer2DConfig transformer;
        var encoders = new Dictionary<Sd3TextEncoder, (TextEncoderFile File, IReadOnlyDictionary<string, long[]> Shapes)>();
        using (var file = TensorFiles.Open(transformerPath))
        {
            var known = ConfigFile("transformer") is { } t ? FluxTransformer2DConfig.From(JsonConfig.Load(t)) : null;
            transformer = BflKeyMap.InferConfig(file, known);
            var shapes = Shapes(file);
            foreach (var found in TextEncoderFile.Find(transformerPath, shapes)) encoders[found.Kind] = (found, shapes);
        }

        string? t5Tokenizer = null;
        foreach (string path in options.TextEncoders)
        {
            if (Directory.Exists(path) || path.EndsWith(".model", StringComparison.OrdinalIgnoreCase))
            {
                t5Tokenizer = Directory.Exists(path) ? path : Path.GetDirectoryName(Path.GetFullPath(path))!;
                if (!File.Exists(Path.Combine(t5Tokenizer, T5Tokenizer.SpieceFile)))
                    throw new FileNotFoundException($"--text-encoder {path}: no {T5Tokenizer.SpieceFile} there; T5's tokenizer is the spiece.model of FLUX.1's tokenizer_2 folder.");
                continue;
            }
            using var file = TensorFiles.Open(path);
            var shapes = Shapes(file);
            var kinds = TextEncoderFile.Find(path, shapes);
            if (kinds.Count == 0)
                throw new InvalidDataException($"--text-encoder {path}: no text encoder found (CLIP's embeddings.token_embedding.weight or T5's encoder.block.0.layer.0.SelfAttention.q.weight); " +
                    $"Flux takes clip_l.safetensors and t5xxl_fp16.safetensors {Download}.");
            foreach (var kind in kinds)
            {
                if (kind.Kind == Sd3TextEncoder.ClipG)
                    throw new InvalidDataException($"--text-encoder {path} is CLIP-G (bigG), SD3's second encoder; Flux takes CLIP-L and T5: give clip_l.safetensors {Download}.");
                encoders[kind.Kind] = (kind, shapes);
            }
        }
        if (!encoders.TryGetValue(Sd3TextEncoder.ClipL, out var clip))
            throw new FileNotFoundException($"{transformerPath} is a Flux.1 transformer without its text encoders: give CLIP-L with --text-encoder clip_l.safetensors {Download}.");
        if (!encoders.TryGetValue(Sd3TextEncoder.T5, out var t5))
            throw new FileNotFoundException($"{transformerPath} is a Flux.1 transformer without its text encoders: give T5 with --text-encoder t5xxl_fp16.safetensors (or t5xxl_fp8_e4m3fn.safetensors) {Download}.");
        string vae = options.Vae
            ?? throw new FileNotFoundException($"{transformerPath} is a Flux.1 transformer without a VAE: give --vae ae.safetensors (black-forest-labs/FLUX.1-schnell).");
        if (!File.Exists(vae))
            throw new FileNotFoundException($"--vae {vae}: no such file; Flux.1's VAE is ae.safetensors (black-forest-labs/FLUX.1-schnell).");

        var clipConfig = ClipTextConfig.From(ConfigFile("text_encoder") is { } c ? JsonConfig.Load(c) : Json(clip.File.InferConfig(clip.Shapes), clip.File.Path));
        var t5Config = T5Config.From(ConfigFile("text_encoder_2") is { } c2 ? JsonConfig.Load(c2) : Json(t5.File.InferConfig(t5.Shapes), t5.File.Path));
        if (t5Config.DModel != transformer.JointAttentionDim)
            throw new InvalidDataException($"{t5.File.Path}: the T5's d_model is {t5Config.DModel} but the Flux transformer's joint_attention_dim is {transformer.JointAttentionDim}: " +
                "the T5 belongs to another model (Flux.1 takes T5-XXL, 4096).");
        if (clipConfig.HiddenSize != transformer.PooledProjectionDim)
            throw new InvalidDataException($"{clip.File.Path}: the CLIP is {clipConfig.HiddenSize} wide but the Flux transformer's pooled_projection_dim is {transformer.PooledProjectionDim}: " +
                "the CLIP belongs to another model (Flux.1 takes CLIP-L, 768).");

        string? vaeConfig = ConfigFile("vae");
        AutoencoderKLConfig vaeModel;
        using (var file = TensorFiles.Open(vae))
            vaeModel = AutoencoderKLConfig.From(vaeConfig is not null ? JsonConfig.Load(vaeConfig) : Json(InferVae(vae, Shapes(file)), vae));

        string tokenizer = t5Tokenizer ?? FindT5Tokenizer(config, t5.File.Path)
            ?? throw new FileNotFoundException($"{t5.File.Path}: T5's tokenizer (spiece.model) was not found beside it: download tokenizer_2/spiece.model of " +
                "black-forest-labs/FLUX.1-schnell and give it with --text-encoder spiece.model (or put it beside the T5 file).");
        string? scheduler = ConfigFile("scheduler", "scheduler_config.json");
        return new FluxComponentFiles
        {
            TransformerPath = transformerPath,
            Transformer = transformer,
            Clip = clip.File,
            ClipConfig = clipConfig,
            T5 = t5.File,
            T5Config = t5Config,
            VaePath = vae,
            VaeConfig = vaeModel,
            VaeConfigSource = vaeConfig ?? vae,
            T5TokenizerFolder = tokenizer,
            ClipTokenizerFolder = ConfigFile("tokenizer", "vocab.json") is not null ? Path.Combine(config!, "tokenizer") : null,
            SchedulerConfig = scheduler is not null ? SchedulerConfig.Load(scheduler) : SchedulerConfig.Parse(DefaultScheduler(transformer.GuidanceEmbeds).ToJsonString()),
        };
    }

    /// <summary>black-forest-labs/FLUX.1-dev's scheduler_config.json (dynamic shift from the image token count), or
    /// FLUX.1-schnell's (shift 1, static).</summary>
    public static JsonObject DefaultScheduler(bool dev) => new()
    {
        ["_class_name"] = "FlowMatchEulerDiscreteScheduler",
        ["base_image_seq_len"] = 256,
        ["base_shift"] = 0.5,
        ["max_image_seq_len"] = 4096,
        ["max_shift"] = 1.15,
        ["num_train_timesteps"] = 1000,
        ["shift"] = dev ? 3.0 : 1.0,
        ["use_dynamic_shifting"] = dev,
    };

    static Dictionary<string, long[]> Shapes(ITensorFile file) =>
        file.Headers.GroupBy(h => LdmKeyMap.Normalize(h.Name), StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First().Shape, StringComparer.Ordinal);

    // Through text: a JsonValue built from an int does not read as a double, one parsed from JSON does.
    static JsonConfig Json(JsonObject json, string path) => JsonConfig.Parse(json.ToJsonString(), $"config inferred from {path}");

    /// <summary>The AutoencoderKL of a VAE file from its shapes, in the LDM layout (<c>encoder.down.0.block.0…</c>, perhaps
    /// under <c>first_stage_model.</c>) or diffusers' (<c>encoder.down_blocks.0.resnets.0…</c>), with FLUX.1's vae
    /// config for what shapes cannot tell: 32 norm groups, scaling 0.3611, shift 0.1159.</summary>
    static JsonObject InferVae(string path, Dictionary<string, long[]> shapes)
    {
        string p = shapes.Keys.Any(k => k.StartsWith(LdmKeyMap.VaePrefix, StringComparison.Ordinal)) ? LdmKeyMap.VaePrefix : "";
        bool ldm = shapes.ContainsKey(p + "encoder.down.0.block.0.conv1.weight");
        string Down(int i) => ldm ? $"encoder.down.{i}.block." : $"encoder.down_blocks.{i}.resnets.";
        long[] Shape(string key) => shapes.TryGetValue(p + key, out var s) ? s
            : throw new InvalidDataException($"--vae {path}: the tensor {p + key} is missing; this is not an AutoencoderKL file (Flux.1's is ae.safetensors of black-forest-labs/FLUX.1-schnell).");
        int Count(string prefix)
        {
            var regex = new Regex("^" + Regex.Escape(p + prefix) + @"(\d+)\.", RegexOptions.CultureInvariant);
            return shapes.Keys.Select(k => regex.Match(k)).Where(m => m.Success).Select(m => int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).Distinct().Count();
        }
        int levels = Count(ldm ? "encoder.down." : "encoder.down_blocks.");
        if (levels == 0) Shape(Down(0) + "0.conv1.weight"); // refuses, naming the tensor
        var channels = Enumerable.Range(0, levels).Select(i => (JsonNode)(int)Shape(Down(i) + "0.conv2.weight")[0]).ToArray();
        JsonArray Repeat(string type) => new(Enumerable.Range(0, levels).Select(_ => (JsonNode)type).ToArray());
        return new JsonObject
        {
            ["_class_name"] = "AutoencoderKL",
            ["act_fn"] = "silu",
            ["block_out_channels"] = new JsonArray(channels),
            ["down_block_types"] = Repeat("DownEncoderBlock2D"),
            ["force_upcast"] = true,
            ["in_channels"] = (int)Shape("encoder.conv_in.weight")[1],
            ["latent_channels"] = (int)Shape("decoder.conv_in.weight")[1],
            ["layers_per_block"] = Count(Down(0)),
            ["mid_block_add_attention"] = shapes.Keys.Any(k => k.StartsWith(p + (ldm ? "encoder.mid.attn_1." : "encoder.mid_block.attentions.0."), StringComparison.Ordinal)),
            ["norm_num_groups"] = 32,
            ["out_channels"] = (int)Shape("decoder.conv_out.weight")[0],
            ["sample_size"] = 1024,
            ["scaling_factor"] = 0.3611,
            ["shift_factor"] = 0.1159,
            ["up_block_types"] = Repeat("UpDecoderBlock2D"),
            ["use_post_quant_conv"] = shapes.ContainsKey(p + "post_quant_conv.weight"),
            ["use_quant_conv"] = shapes.ContainsKey(p + "quant_conv.weight"),
        };
    }

    /// <summary>T5's tokenizer: the config folder's tokenizer_2, else a spiece.model beside the T5 weights (or in a
    /// tokenizer_2 folder there or one level up, as a diffusers text_encoder_2/ has it).</summary>
    static string? FindT5Tokenizer(string? config, string t5Path)
    {
        var candidates = new List<string>();
        if (config is not null) candidates.Add(Path.Combine(config, "tokenizer_2"));
        string dir = Path.GetDirectoryName(Path.GetFullPath(t5Path))!;
        candidates.Add(dir);
        candidates.Add(Path.Combine(dir, "tokenizer_2"));
        if (Path.GetDirectoryName(dir) is { } parent)
            candidates.Add(Path.Combine(parent, "tokenizer_2"));
        return candidates.FirstOrDefault(d => File.Exists(Path.Combine(d, T5Tokenizer.SpieceFile)));
    }
}
