using System.Text.Json.Nodes;
using SharpDiffusion.Configuration;
using SharpDiffusion.Models.Clip;
using SharpDiffusion.Models.UNet;
using SharpDiffusion.Models.Vae;
using SharpDiffusion.Schedulers;
using SharpDiffusion.Text;
using static TorchSharp.torch;

namespace SharpDiffusion.Loading.SingleFile;

/// <summary>The components of a single-file checkpoint, loaded, with the configs they were built from.</summary>
public sealed record SingleFileComponents(ClipTokenizer Tokenizer, ClipTextModel TextEncoder, UNet2DConditionModel Unet,
    AutoencoderKL Vae, SchedulerConfig SchedulerConfig, LdmCheckpoint Checkpoint)
{
    /// <summary>SDXL's second tokenizer (the "!" pad variant) and text encoder (CLIPTextModelWithProjection).</summary>
    public ClipTokenizer? Tokenizer2 { get; init; }
    public ClipTextModel? TextEncoder2 { get; init; }
}

/// <summary>
/// Loads a single-file checkpoint (LDM layout, .safetensors; .ckpt through <see cref="TensorFiles"/>) into our
/// components: each is built on the meta device from its inferred config and filled tensor by tensor through
/// <see cref="StateDictLoader"/>, whose rename maps the checkpoint's keys with <see cref="LdmKeyMap"/>, so peak memory
/// is the weights plus one tensor, as for a diffusers folder. The tokenizer is the bundled CLIP one (SD 1.x or, for an
/// OpenCLIP text encoder, SD 2.x's with the "!" pad).
/// </summary>
public static class SingleFileLoader
{
    static readonly Device Meta = new("meta");

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
        var convs = new WeightPlacement(options.DType, device, ComponentLoader.ChannelsLast(options));
        var flat = new WeightPlacement(options.DType, device, false);

        var modules = new List<nn.Module>();
        try
        {
            var unet = Build(() => new UNet2DConditionModel(unetConfig));
            modules.Add(unet);
            Fill(unet, file, LdmKeyMap.UNet(Names(unet), unetConfig), LdmKeyMap.UNetPrefix, convs);
            ComponentLoader.UseAttentionKernels(unet, options);

            var vae = Build(() => new AutoencoderKL(vaeConfig));
            modules.Add(vae);
            Fill(vae, file, LdmKeyMap.Vae(Names(vae), vaeConfig.BlockOutChannels.Length, vaeConfig.LayersPerBlock), LdmKeyMap.VaePrefix, convs,
                skip: k => k.StartsWith(LdmKeyMap.VaePrefix + "loss.", StringComparison.Ordinal)); // training-only discriminator/LPIPS
            ComponentLoader.UpcastIfNeeded(vae, options);

            var textEncoder = Build(() => new ClipTextModel(textConfig));
            modules.Add(textEncoder);
            ClipTokenizer tokenizer;
            if (checkpoint.TextEncoderKind == LdmTextEncoder.Clip)
            {
                // Older checkpoints lack transformers' "text_model." level: map both spellings.
                string prefix = checkpoint.ClipKeyPrefix;
                var toLdm = Names(textEncoder).ToDictionary(n => n, n => prefix + n["text_model.".Length..], StringComparer.Ordinal);
                Fill(textEncoder, file, toLdm, checkpoint.ClipPrefix, flat, skip: k => k.EndsWith("position_ids", StringComparison.Ordinal));
                tokenizer = ClipTokenizer.Bundled(ClipTokenizer.BundledVariant.Sd1);
            }
            else
            {
                using var split = new FusedQkvSplitFile(file);
                var toLdm = LdmKeyMap.OpenClip(Names(textEncoder), textConfig.NumHiddenLayers);
                var used = new HashSet<string>(toLdm.Values, StringComparer.Ordinal);
                // Not part of a CLIPTextModel: the contrastive projection and temperature, the causal mask buffer, and
                // the resblocks past the layer SD 2.x conditions on (the penultimate).
                Fill(textEncoder, split, toLdm, LdmKeyMap.OpenClipPrefix, flat,
                    skip: k => !used.Contains(k) && (k.EndsWith("text_projection", StringComparison.Ordinal) || k.EndsWith("logit_scale", StringComparison.Ordinal)
                        || k.EndsWith("attn_mask", StringComparison.Ordinal) || ResblockIndex(k) >= textConfig.NumHiddenLayers));
                tokenizer = ClipTokenizer.Bundled(ClipTokenizer.BundledVariant.Sd2);
            }
            if (tokenizer.VocabSize > textConfig.VocabSize)
                throw new InvalidDataException($"Checkpoint {path}: its text encoder embeds {textConfig.VocabSize} tokens, fewer than the {tokenizer.VocabSize} of the CLIP tokenizer");

            ClipTextModel? textEncoder2 = null;
            if (text2Config is not null)
            {
                // SDXL's OpenCLIP bigG: every layer (the penultimate hidden state and the last layer's pooled output are
                // used), fused q/k/v split, text_projection transposed.
                textEncoder2 = Build(() => new ClipTextModel(text2Config));
                modules.Add(textEncoder2);
                using var split = new FusedQkvSplitFile(file);
                using var transposed = new TransposedFile(split, k => LdmKeyMap.Normalize(k) == LdmKeyMap.XLOpenClipPrefix + "text_projection");
                var toLdm = LdmKeyMap.OpenClip(Names(textEncoder2), text2Config.NumHiddenLayers, LdmKeyMap.XLOpenClipPrefix);
                Fill(textEncoder2, transposed, toLdm, LdmKeyMap.XLOpenClipPrefix, flat,
                    skip: k => k.EndsWith("logit_scale", StringComparison.Ordinal) || k.EndsWith("attn_mask", StringComparison.Ordinal));
            }

            var scheduler = SchedulerConfig.Parse(checkpoint.SchedulerConfig.ToJsonString());
            foreach (var m in modules) m.eval();
            return new SingleFileComponents(tokenizer, textEncoder, unet, vae, scheduler, checkpoint)
            {
                Tokenizer2 = textEncoder2 is null ? null : ClipTokenizer.Bundled(ClipTokenizer.BundledVariant.Sd2),
                TextEncoder2 = textEncoder2,
            };
        }
        catch
        {
            foreach (var m in modules) m.Dispose();
            throw;
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

    static T Build<T>(Func<T> construct)
    {
        using var _ = Models.Layers.Placement(Meta);
        return construct();
    }

    static IEnumerable<string> Names(nn.Module module) => module.named_parameters().Select(p => p.name);

    /// <summary>Loads the keys under <paramref name="prefix"/> into <paramref name="model"/>: each LDM key renamed to
    /// the parameter whose LDM name it is (a pickle's "state_dict." level ignored); keys outside the prefix, and those
    /// <paramref name="skip"/> names, are left alone. A key under the prefix that maps to nothing is an error.</summary>
    static void Fill(nn.Module model, ITensorFile file, Dictionary<string, string> toLdm, string prefix, WeightPlacement placement, Func<string, bool>? skip = null)
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
