using System.Security.Cryptography;
using System.Text.RegularExpressions;
using SharpDiffusion.Loading;
using static TorchSharp.torch;

namespace SharpDiffusion.Adapters;

/// <summary>The model a LoRA layer patches.</summary>
public enum LoraTarget { Unet, TextEncoder, TextEncoder2 }

/// <summary>
/// One low-rank update of one weight: ΔW = (alpha / rank) · up · down, with down [r, in] (or [r, in, k, k] for a conv
/// "LoCon" layer) and up [out, r] (or [out, r, 1, 1]). <see cref="Module"/> is the patched module's path in our
/// (diffusers) parameter names with every '.' written as '_' (kohya's spelling), so both naming styles meet there.
/// </summary>
public sealed record LoraLayer(LoraTarget Target, string Module, string SourceKey, Tensor Down, Tensor Up, double? Alpha)
{
    public long Rank => Down.shape[0];

    /// <summary>alpha / rank; no alpha stored means alpha = rank (diffusers and kohya).</summary>
    public double AlphaScale => Alpha is double a ? a / Rank : 1.0;
}

/// <summary>
/// A LoRA file, read once and applied to any number of generations (<see cref="LoraMerger"/>). Understands kohya /
/// AUTOMATIC1111 files (<c>lora_unet_*</c>, <c>lora_te_*</c>, <c>.lora_down/.lora_up/.alpha</c>, conv "LoCon" layers)
/// and diffusers / PEFT files (<c>unet.*</c>, <c>text_encoder.*</c> with <c>lora_A/lora_B</c>, <c>lora.down/up</c>,
/// <c>lora_linear_layer.down/up</c> or the legacy attention-processor <c>to_q_lora.down</c>). Which weight a layer
/// patches is decided when it is applied, against the model's own parameter names (<see cref="LoraMerger"/>).
/// </summary>
public sealed class LoraFile : IDisposable
{
    enum Part { Down, Up, Alpha }

    // Suffix → which tensor of the layer it is. Everything before the suffix names the module.
    static readonly (Regex Suffix, Part Part)[] Suffixes =
    [
        (new(@"\.lora_down\.weight$"), Part.Down), (new(@"\.lora_up\.weight$"), Part.Up),                 // kohya
        (new(@"\.lora_A(\.[A-Za-z0-9_]+)?\.weight$"), Part.Down), (new(@"\.lora_B(\.[A-Za-z0-9_]+)?\.weight$"), Part.Up), // PEFT
        (new(@"\.lora(_linear_layer)?\.down\.weight$"), Part.Down), (new(@"\.lora(_linear_layer)?\.up\.weight$"), Part.Up), // diffusers
        (new(@"_lora\.down\.weight$"), Part.Down), (new(@"_lora\.up\.weight$"), Part.Up),                 // legacy processors
        (new(@"\.alpha$"), Part.Alpha),
    ];

    // Prefix → target; null = a model we do not have (named in the error).
    static readonly (string Prefix, LoraTarget? Target, string? Model)[] Prefixes =
    [
        ("lora_unet_", LoraTarget.Unet, null), ("lora_te1_", LoraTarget.TextEncoder, null), ("lora_te2_", LoraTarget.TextEncoder2, null),
        ("lora_te_", LoraTarget.TextEncoder, null), ("base_model.model.", LoraTarget.Unet, null),
        ("unet.", LoraTarget.Unet, null), ("text_encoder_2.", LoraTarget.TextEncoder2, null), ("text_encoder.", LoraTarget.TextEncoder, null),
        // Flux (and SD3) transformers: diffusers/PEFT and kohya's diffusers-named spelling; BFL's names come as lora_unet_*.
        ("transformer.", LoraTarget.Unet, null), ("lora_transformer_", LoraTarget.Unet, null),
    ];

    // diffusers' legacy module names → the parameter names of the modules (applied to dotted names).
    static readonly (Regex Pattern, string Replacement)[] ModuleRenames =
    [
        (new(@"\.processor\."), "."),
        (new(@"(attn[12])\.to_out$"), "$1.to_out.0"),
        (new(@"self_attn\.to_([qkv])$"), "self_attn.$1_proj"),
        (new(@"self_attn\.to_out$"), "self_attn.out_proj"),
    ];

    public string Path { get; }
    /// <summary>The file name without extension: the name AUTOMATIC1111's <c>&lt;lora:name&gt;</c> uses.</summary>
    public string Name { get; }
    public IReadOnlyList<LoraLayer> Layers { get; }

    LoraFile(string path, IReadOnlyList<LoraLayer> layers)
    {
        Path = path;
        Name = System.IO.Path.GetFileNameWithoutExtension(path);
        Layers = layers;
    }

    /// <summary>Reads a LoRA file (.safetensors, or a torch pickle: .pt/.ckpt/.bin, e.g. diffusers' pytorch_lora_weights.bin);
    /// refuses keys it cannot place with a one-line message naming the file and key.</summary>
    public static LoraFile Load(string path)
    {
        using var file = TensorFiles.Open(path);
        var parts = new Dictionary<(LoraTarget, string), Dictionary<Part, (string Key, Tensor Value)>>();
        foreach (var header in file.Headers)
        {
            var (target, module, part) = Parse(path, header.Name);
            var key = (target, module);
            if (!parts.TryGetValue(key, out var layer))
                parts[key] = layer = new();
            layer[part] = (header.Name, file.Load(header.Name));
        }
        if (parts.Count == 0)
            throw new InvalidDataException($"{path}: no tensors, not a LoRA file.");

        var layers = new List<LoraLayer>();
        foreach (var ((target, module), layer) in parts)
        {
            if (!layer.TryGetValue(Part.Down, out var down) || !layer.TryGetValue(Part.Up, out var up))
            {
                string key = layer.Values.First().Key;
                throw new InvalidDataException($"{path}: '{key}' has no matching {(layer.ContainsKey(Part.Down) ? "up" : "down")} weight; the file is incomplete.");
            }
            double? alpha = layer.TryGetValue(Part.Alpha, out var a) ? a.Value.to(ScalarType.Float64).item<double>() : null;
            if (down.Value.dim() is not (2 or 4) || up.Value.dim() is not (2 or 4) || up.Value.shape[1] != down.Value.shape[0])
                throw new InvalidDataException($"{path}: '{down.Key}' [{string.Join(", ", down.Value.shape)}] and '{up.Key}' " +
                    $"[{string.Join(", ", up.Value.shape)}] are not a low-rank pair (up [out, r], down [r, in]).");
            layers.Add(new LoraLayer(target, module, down.Key, down.Value.to(ScalarType.Float32), up.Value.to(ScalarType.Float32), alpha));
        }
        return new LoraFile(path, layers);
    }

    static (LoraTarget Target, string Module, Part Part) Parse(string path, string key)
    {
        var (prefix, target, model) = Prefixes.FirstOrDefault(p => key.StartsWith(p.Prefix, StringComparison.Ordinal));
        if (prefix is null)
            throw new InvalidDataException($"{path}: '{key}' is not a LoRA key this loader knows (expected lora_unet_*, lora_te_*, unet.* or text_encoder.*).");
        if (target is not LoraTarget t)
            throw new NotSupportedException($"{path}: '{key}' is for {model}: this LoRA is for SDXL, which is not supported yet.");
        foreach (var (suffix, part) in Suffixes)
        {
            var m = suffix.Match(key);
            if (!m.Success)
                continue;
            string module = key[prefix.Length..m.Index];
            foreach (var (pattern, replacement) in ModuleRenames)
                module = pattern.Replace(module, replacement);
            return (t, module.Replace('.', '_'), part);
        }
        throw new NotSupportedException($"{path}: '{key}' is not a plain LoRA tensor (lora_down/lora_up/alpha or lora_A/lora_B); " +
            "LoHa, LoKr, DoRA and other network types are not supported.");
    }

    /// <summary>AUTOMATIC1111's short hash of a LoRA (infotext "Lora hashes"): the first 12 hex digits of the sha256 of a
    /// .safetensors file's data after its header (kohya's "addnet" hash), or of the whole file for other formats.</summary>
    public static string ShortHash(string path)
    {
        using var stream = File.OpenRead(path);
        if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
        {
            Span<byte> length = stackalloc byte[8];
            stream.ReadExactly(length);
            stream.Seek(8 + (long)BitConverter.ToUInt64(length), SeekOrigin.Begin);
        }
        return Convert.ToHexStringLower(SHA256.HashData(stream))[..12];
    }

    string? _hash;
    public string Hash => _hash ??= ShortHash(Path);

    public void Dispose()
    {
        foreach (var layer in Layers)
        {
            layer.Down.Dispose();
            layer.Up.Dispose();
        }
    }
}
