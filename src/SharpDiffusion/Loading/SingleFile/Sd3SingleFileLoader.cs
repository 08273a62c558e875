using SharpDiffusion.Configuration;
using SharpDiffusion.Models.Clip;
using SharpDiffusion.Models.T5;
using SharpDiffusion.Models.Transformers;
using SharpDiffusion.Models.Vae;
using SharpDiffusion.Schedulers;
using SharpDiffusion.Text;
using static TorchSharp.torch;

namespace SharpDiffusion.Loading.SingleFile;

/// <summary>The components of an SD3/SD3.5 single file and its text encoder files (loaded, or read at first use with
/// <see cref="LoadOptions.LowMemory"/>), with the configs they were built from. The owner disposes the modules.</summary>
public sealed record Sd3SingleFileComponents(Sd3Checkpoint Checkpoint, ClipTokenizer Tokenizer, ComponentWeights TextEncoder,
    ClipTokenizer Tokenizer2, ComponentWeights TextEncoder2, T5Tokenizer? Tokenizer3, ComponentWeights? TextEncoder3,
    ComponentWeights Transformer, ComponentWeights Vae, SchedulerConfig SchedulerConfig)
{
    public IEnumerable<ComponentWeights> All => new[] { TextEncoder, TextEncoder2, TextEncoder3, Transformer, Vae }.OfType<ComponentWeights>();
}

/// <summary>
/// Loads a Stability SD3/SD3.5 single file (<see cref="Sd3Checkpoint"/>) as <see cref="SingleFileLoader"/> loads an LDM
/// one: every component built on the meta device from its config and filled tensor by tensor through
/// <see cref="StateDictLoader"/>, whose rename runs the key maps backwards (<see cref="MmditKeyMap"/> for the MMDiT, with
/// fused q/k/v split and the adaLN halves swapped by <see cref="TensorPartsFile"/>; <see cref="LdmKeyMap.Vae"/>; the text
/// encoders' transformers names under their prefix). Text encoder files given with the checkpoint are read the same way.
/// If any step fails, the components already built are freed.
/// </summary>
public static class Sd3SingleFileLoader
{
    public static Sd3SingleFileComponents Load(string path, LoadOptions? options = null, SingleFileOptions? singleFile = null)
    {
        options ??= new LoadOptions();
        Sd3Checkpoint checkpoint;
        using (var file = TensorFiles.Open(path)) checkpoint = Sd3Checkpoint.Inspect(file, singleFile);
        var transformerConfig = SD3Transformer2DConfig.From(Config(checkpoint.TransformerConfig, path, "transformer"));
        var vaeConfig = AutoencoderKLConfig.From(Config(checkpoint.VaeConfig, path, "VAE"));
        var texts = checkpoint.TextEncoders;
        var clipL = ClipTextConfig.From(Config(texts[Sd3TextEncoder.ClipL].Config, texts[Sd3TextEncoder.ClipL].File.Path, "CLIP-L"));
        var clipG = ClipTextConfig.From(Config(texts[Sd3TextEncoder.ClipG].Config, texts[Sd3TextEncoder.ClipG].File.Path, "CLIP-G"));
        var t5 = texts.TryGetValue(Sd3TextEncoder.T5, out var t5Entry) ? T5Config.From(Config(t5Entry.Config, t5Entry.File.Path, "T5")) : null;
        // Small and the usual thing a download lacks: before any weights are read.
        var tokenizer = checkpoint.ClipTokenizerFolder is { } t1 ? ClipTokenizer.FromDirectory(t1) : ClipTokenizer.Bundled(ClipTokenizer.BundledVariant.Sd1);
        var tokenizer2 = checkpoint.ClipTokenizer2Folder is { } t2 ? ClipTokenizer.FromDirectory(t2) : ClipTokenizer.Bundled(ClipTokenizer.BundledVariant.Sd2);
        var tokenizer3 = t5 is null ? null : T5Tokenizer.FromDirectory(checkpoint.T5TokenizerFolder!);
        var schedulerConfig = SchedulerConfig.Parse(checkpoint.SchedulerConfig.ToJsonString());
        var device = new Device(options.Device);
        var flat = new WeightPlacement(options.DType, device, false);
        var convs = new WeightPlacement(options.DType, device, options.Layout().Value);

        var built = new List<ComponentWeights>();
        ComponentWeights Add(ComponentWeights w) { built.Add(w); return w; }
        try
        {
            var encoder = Add(Clip(texts[Sd3TextEncoder.ClipL].File, clipL, options, flat));
            var encoder2 = Add(Clip(texts[Sd3TextEncoder.ClipG].File, clipG, options, flat));
            var encoder3 = t5 is null ? null : Add(T5(t5Entry.File, t5, options, flat));
            var transformer = Add(ComponentLoader.Create(() => new SD3Transformer2DModel(transformerConfig), options, m =>
            {
                var toStability = MmditKeyMap.Transformer(Names(m), transformerConfig.NumLayers);
                using var file = TensorFiles.Open(path);
                using var parts = new TensorPartsFile(file, toStability.Values);
                SingleFileLoader.Fill(m, parts, toStability, MmditKeyMap.TransformerPrefix, flat);
            }));
            ((SD3Transformer2DModel)transformer.Module).UseAttentionKernel(options.FastPaths.AttentionChoice(options.Attention));
            var vae = Add(ComponentLoader.Create(() => new AutoencoderKL(vaeConfig), options, m =>
            {
                using var file = TensorFiles.Open(path);
                SingleFileLoader.Fill(m, file, LdmKeyMap.Vae(Names(m), vaeConfig.BlockOutChannels.Length, vaeConfig.LayersPerBlock), MmditKeyMap.VaePrefix, convs,
                    skip: k => k.StartsWith(MmditKeyMap.VaePrefix + "loss.", StringComparison.Ordinal));
                ComponentLoader.UpcastIfNeeded((AutoencoderKL)m, options);
            }));
            return new Sd3SingleFileComponents(checkpoint, tokenizer, encoder, tokenizer2, encoder2, tokenizer3, encoder3, transformer, vae, schedulerConfig);
        }
        catch
        {
            foreach (var w in built) w.Module.Dispose();
            throw;
        }
    }

    /// <summary>A CLIP text encoder under its prefix; SD3's CLIP-L projection is the identity when the file has none (diffusers' torch.eye).
    /// A CLIPTextModel config (no projection_dim: Flux's CLIP-L) skips a stored projection.</summary>
    internal static ComponentWeights Clip(TextEncoderFile source, ClipTextConfig config, LoadOptions options, WeightPlacement placement) =>
        ComponentLoader.Create(() => new ClipTextModel(config), options, m =>
        {
            var toFile = Names(m).ToDictionary(n => n, source.KeyOf, StringComparer.Ordinal);
            using var file = TensorFiles.Open(source.Path);
            string? projection = config.ProjectionDim is null ? null : toFile["text_projection.weight"];
            using var complete = projection is null || file.Contains(projection) ? null
                : new ExtraTensorsFile(file, projection, [config.ProjectionDim!.Value, config.HiddenSize], () => eye(config.HiddenSize));
            SingleFileLoader.Fill(m, (ITensorFile?)complete ?? file, toFile, source.Prefix, placement,
                skip: k => k.EndsWith("position_ids", StringComparison.Ordinal) || k.EndsWith("logit_scale", StringComparison.Ordinal)
                    || (projection is null && k == source.KeyOf("text_projection.weight")));
        });

    /// <summary>T5's encoder under its prefix: tied embeddings stored once (shared.weight, or only encoder.embed_tokens.weight),
    /// a whole encoder-decoder's decoder skipped, as transformers' T5EncoderModel.</summary>
    internal static ComponentWeights T5(TextEncoderFile source, T5Config config, LoadOptions options, WeightPlacement placement) =>
        ComponentLoader.Create(() => new T5EncoderModel(config), options, m =>
        {
            using var file = TensorFiles.Open(source.Path);
            string shared = source.KeyOf("shared.weight"), embedTokens = source.KeyOf("encoder.embed_tokens.weight");
            bool hasShared = file.Headers.Any(h => LdmKeyMap.Normalize(h.Name) == shared);
            var toFile = Names(m).ToDictionary(n => n, n => n == "shared.weight" && !hasShared ? embedTokens : source.KeyOf(n), StringComparer.Ordinal);
            SingleFileLoader.Fill(m, file, toFile, source.Prefix, placement,
                skip: k => (k == embedTokens && hasShared) || k.StartsWith(source.Prefix + "decoder.", StringComparison.Ordinal) || k == source.Prefix + "lm_head.weight");
            T5EncoderModel.AfterLoad((T5EncoderModel)m, options);
        });

    // Through text: a JsonValue built from an int does not read as a double, one parsed from JSON does.
    static JsonConfig Config(System.Text.Json.Nodes.JsonObject json, string path, string what) => JsonConfig.Parse(json.ToJsonString(), $"{what} config for {path}");

    static IEnumerable<string> Names(nn.Module module) => module.named_parameters().Select(p => p.name);
}
