using System.Text.Json.Nodes;
using SharpDiffusion.Configuration;
using SharpDiffusion.Models.Clip;
using SharpDiffusion.Models.UNet;
using SharpDiffusion.Models.Vae;
using SharpDiffusion.Schedulers;
using SharpDiffusion.Text;
using static TorchSharp.torch;

namespace SharpDiffusion.Loading.SingleFile;

/// <summary>The components of a single-file checkpoint (loaded, or read at first use with <see cref="LoadOptions.LowMemory"/>),
/// with the configs they were built from.</summary>
public sealed record SingleFileComponents(ClipTokenizer Tokenizer, PipelineWeights Weights, SchedulerConfig SchedulerConfig, LdmCheckpoint Checkpoint)
{
    public ClipTextModel TextEncoder => (ClipTextModel)Weights.TextEncoder.Module;
    public UNet2DConditionModel Unet => (UNet2DConditionModel)Weights.Unet.Module;
    public AutoencoderKL Vae => (AutoencoderKL)Weights.Vae.Module;
    /// <summary>SDXL's second tokenizer (the "!" pad variant) and text encoder (CLIPTextModelWithProjection).</summary>
    public ClipTokenizer? Tokenizer2 { get; init; }
    public ClipTextModel? TextEncoder2 => Weights.TextEncoder2?.Module as ClipTextModel;
}

/// <summary>
/// Loads a single-file checkpoint (LDM layout, .safetensors; .ckpt through <see cref="TensorFiles"/>) into our
/// components: each is built on the meta device from its inferred config and filled tensor by tensor through
/// <see cref="StateDictLoader"/>, whose rename maps the checkpoint's keys with <see cref="LdmKeyMap"/>, so peak memory
/// is the weights plus one tensor, as for a diffusers folder. With <see cref="LoadOptions.LowMemory"/> a component's
/// weights are read when it runs (the file opened again then), not here. The tokenizer is the bundled CLIP one (SD 1.x or, for an
/// OpenCLIP text encoder, SD 2.x's with the "!" pad).
/// </summary>
public static class SingleFileLoader
{
    public static SingleFileComponents Load(string path, LoadOptions? options = null, SingleFileOptions? singleFile = null)
    {
        options ??= new LoadOptions();
        using var file = TensorFiles.Open(path);
        var checkpoint = LdmCheckpoint.Inspect(file, singleFile);
        var unetConfig = UNet2DConditionConfig.From(Config(checkpoint.UNetConfig, path, "UNet"));
        var vaeConfig = AutoencoderKLConfig.From(Config(checkpoint.VaeConfig, path, "VAE"));
        var textConfig = ClipTextConfig.From(Config(checkpoint.TextEncoderConfig, path, "text encoder"));
        var text2Config = checkpoint.TextEncoder2Config is { } t2 ? ClipTextConfig.From(Config(t2, path, "text encoder 2")) : null;
        var device = new Device(options.Device);
        var convs = new WeightPlacement(options.DType, device, options.Layout().Value);
        var flat = new WeightPlacement(options.DType, device, false);

        // The file opened here serves the components read now; one read later (LowMemory) opens it again.
        ITensorFile? open = file;
        void WithFile(Action<ITensorFile> use)
        {
            if (open is not null) { use(open); return; }
            using var again = TensorFiles.Open(path);
            use(again);
        }

        var modules = new List<ComponentWeights>();
        ComponentWeights Add(ComponentWeights w) { modules.Add(w); return w; }
        try
        {
            var unet = Add(ComponentLoader.Create(() => new UNet2DConditionModel(unetConfig), options,
                m => WithFile(f => Fill(m, f, LdmKeyMap.UNet(Names(m), unetConfig), LdmKeyMap.UNetPrefix, convs))));
            ComponentLoader.UseAttentionKernels((UNet2DConditionModel)unet.Module, options);

            var vae = Add(ComponentLoader.Create(() => new AutoencoderKL(vaeConfig), options, m =>
            {
                WithFile(f => Fill(m, f, LdmKeyMap.Vae(Names(m), vaeConfig.BlockOutChannels.Length, vaeConfig.LayersPerBlock), LdmKeyMap.VaePrefix, convs,
                    skip: k => k.StartsWith(LdmKeyMap.VaePrefix + "loss.", StringComparison.Ordinal))); // training-only discriminator/LPIPS
                ComponentLoader.UpcastIfNeeded((AutoencoderKL)m, options);
            }));

            // SDXL's OpenCLIP bigG: every layer (the penultimate hidden state and the last layer's pooled output are
            // used), fused q/k/v split, text_projection transposed.
            ComponentWeights BigG(ClipTextConfig config, string prefix) => Add(ComponentLoader.Create(() => new ClipTextModel(config), options, m => WithFile(f =>
            {
                using var split = new FusedQkvSplitFile(f);
                using var transposed = new TransposedFile(split, k => LdmKeyMap.Normalize(k) == prefix + "text_projection");
                var toLdm = LdmKeyMap.OpenClip(Names(m), config.NumHiddenLayers, prefix);
                Fill(m, transposed, toLdm, prefix, flat,
                    skip: k => k.EndsWith("logit_scale", StringComparison.Ordinal) || k.EndsWith("attn_mask", StringComparison.Ordinal));
            })));

            ClipTokenizer tokenizer;
            ComponentWeights textEncoder;
            if (checkpoint.IsRefiner)
            {
                textEncoder = BigG(textConfig, checkpoint.BigGPrefix);                 // the refiner's only text encoder
                tokenizer = ClipTokenizer.Bundled(ClipTokenizer.BundledVariant.Sd2);
            }
            else if (checkpoint.TextEncoderKind == LdmTextEncoder.Clip)
            {
                // Older checkpoints lack transformers' "text_model." level: map both spellings.
                string prefix = checkpoint.ClipKeyPrefix, clipPrefix = checkpoint.ClipPrefix;
                textEncoder = Add(ComponentLoader.Create(() => new ClipTextModel(textConfig), options, m =>
                {
                    var toLdm = Names(m).ToDictionary(n => n, n => prefix + n["text_model.".Length..], StringComparer.Ordinal);
                    WithFile(f => Fill(m, f, toLdm, clipPrefix, flat, skip: k => k.EndsWith("position_ids", StringComparison.Ordinal)));
                }));
                tokenizer = ClipTokenizer.Bundled(ClipTokenizer.BundledVariant.Sd1);
            }
            else
            {
                textEncoder = Add(ComponentLoader.Create(() => new ClipTextModel(textConfig), options, m => WithFile(f =>
                {
                    using var split = new FusedQkvSplitFile(f);
                    var toLdm = LdmKeyMap.OpenClip(Names(m), textConfig.NumHiddenLayers);
                    var used = new HashSet<string>(toLdm.Values, StringComparer.Ordinal);
                    // Not part of a CLIPTextModel: the contrastive projection and temperature, the causal mask buffer, and
                    // the resblocks past the layer SD 2.x conditions on (the penultimate).
                    Fill(m, split, toLdm, LdmKeyMap.OpenClipPrefix, flat,
                        skip: k => !used.Contains(k) && (k.EndsWith("text_projection", StringComparison.Ordinal) || k.EndsWith("logit_scale", StringComparison.Ordinal)
                            || k.EndsWith("attn_mask", StringComparison.Ordinal) || ResblockIndex(k) >= textConfig.NumHiddenLayers));
                })));
                tokenizer = ClipTokenizer.Bundled(ClipTokenizer.BundledVariant.Sd2);
            }
            if (tokenizer.VocabSize > textConfig.VocabSize)
                throw new InvalidDataException($"Checkpoint {path}: its text encoder embeds {textConfig.VocabSize} tokens, fewer than the {tokenizer.VocabSize} of the CLIP tokenizer");

            ComponentWeights? textEncoder2 = null;
            if (text2Config is not null)
                textEncoder2 = BigG(text2Config, LdmKeyMap.XLOpenClipPrefix);

            var scheduler = SchedulerConfig.Parse(checkpoint.SchedulerConfig.ToJsonString());
            return new SingleFileComponents(tokenizer, new PipelineWeights(textEncoder, unet, vae, textEncoder2), scheduler, checkpoint)
            {
                Tokenizer2 = textEncoder2 is null ? null : ClipTokenizer.Bundled(ClipTokenizer.BundledVariant.Sd2),
            };
        }
        catch
        {
            foreach (var m in modules) m.Module.Dispose();
            throw;
        }
        finally
        {
            open = null;
        }
    }

    static int ResblockIndex(string key)
    {
        const string resblocks = LdmKeyMap.OpenClipPrefix + "transformer.resblocks.";
        if (!key.StartsWith(resblocks, StringComparison.Ordinal)) return -1;
        string rest = key[resblocks.Length..];
        int dot = rest.IndexOf('.');
        return int.TryParse(dot < 0 ? rest : rest[..dot], out int i) ? i : -1;
    }

    // Through text: a JsonValue built from an int does not read as a double, one parsed from JSON does.
    static JsonConfig Config(JsonObject json, string path, string what) => JsonConfig.Parse(json.ToJsonString(), $"{what} config inferred from {path}");

    static IEnumerable<string> Names(nn.Module module) => module.named_parameters().Select(p => p.name);

    /// <summary>Loads the keys under <paramref name="prefix"/> into <paramref name="model"/>: each LDM key renamed to
    /// the parameter whose LDM name it is (a pickle's "state_dict." level ignored); keys outside the prefix, and those
    /// <paramref name="skip"/> names, are left alone. A key under the prefix that maps to nothing is an error.</summary>
    internal static void Fill(nn.Module model, ITensorFile file, Dictionary<string, string> toLdm, string prefix, WeightPlacement placement, Func<string, bool>? skip = null)
    {
        var fromLdm = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, ldm) in toLdm) fromLdm[ldm] = name;
        StateDictLoader.Load(model, [file], placement,
            rename: key => fromLdm.GetValueOrDefault(LdmKeyMap.Normalize(key), key),
            ignore: key =>
            {
                string k = LdmKeyMap.Normalize(key);
                return !k.StartsWith(prefix, StringComparison.Ordinal) || skip?.Invoke(k) == true;
            });
    }
}
