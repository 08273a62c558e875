using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using SharpDiffusion.Loading;

namespace SharpDiffusion.Models.Vae;

/// <summary>
/// Loads a TAESD from a diffusers AutoencoderTiny folder or from madebyollin's original files, which hold the encoder and
/// the decoder apart (<c>taesd_encoder.safetensors</c>/<c>.pth</c>, <c>taesd_decoder.*</c>; taesdxl, taesd3, taef1 alike)
/// as bare <c>nn.Sequential</c> state dicts: <c>0.weight</c>, <c>1.conv.0.weight</c>, … The original layers are diffusers'
/// in the same order, except that the decoder starts with a weightless Clamp, so original decoder index N is diffusers'
/// <c>layers.{N-1}</c>; the sizes (blocks per level, widths, latent channels) are read off the keys and shapes.
/// </summary>
public static partial class AutoencoderTinyFiles
{
    [GeneratedRegex(@"^(\d+)\.(.+)$")]
    private static partial Regex IndexedKey();

    /// <summary>Whether <paramref name="path"/> holds an original TAESD half: every key starts with a layer index.</summary>
    public static bool IsOriginalLayout(string path)
    {
        using var file = TensorFiles.Open(path);
        return file.Headers.Count > 0 && file.Headers.All(h => IndexedKey().IsMatch(h.Name));
    }

    /// <summary>A diffusers AutoencoderTiny folder (config.json, diffusion_pytorch_model.safetensors).</summary>
    public static AutoencoderTiny LoadFolder(string dir, JsonObject config)
    {
        var model = new AutoencoderTiny(AutoencoderTinyConfig.From(config, Path.Combine(dir, "config.json")), dir);
        model.eval();
        WeightFiles.LoadInto(model, WeightFiles.Find(dir, "diffusion_pytorch_model", null));
        return model;
    }

    /// <summary>An original TAESD file, either half; the other half is looked for next to it (the same name with
    /// "decoder" and "encoder" swapped). Without an encoder the VAE decodes only; without a decoder it is refused.</summary>
    public static AutoencoderTiny LoadOriginal(string path)
    {
        string name = Path.GetFileName(path);
        bool isEncoder = name.Contains("encoder", StringComparison.OrdinalIgnoreCase);
        string other = Path.Combine(Path.GetDirectoryName(path) ?? ".", isEncoder
            ? Regex.Replace(name, "encoder", "decoder", RegexOptions.IgnoreCase)
            : Regex.Replace(name, "decoder", "encoder", RegexOptions.IgnoreCase));
        string? decoderPath = isEncoder ? (File.Exists(other) ? other : null) : path;
        string? encoderPath = isEncoder ? path : (other != path && File.Exists(other) ? other : null);
        if (decoderPath is null)
            throw new FileNotFoundException($"{path}: a TAESD encoder alone cannot decode; put {Path.GetFileName(other)} next to it and pass that.");

        var (decoderShapes, encoderShapes) = (Shapes(decoderPath), encoderPath is null ? null : Shapes(encoderPath));
        var config = Infer(decoderShapes, encoderShapes, decoderPath);
        var model = new AutoencoderTiny(config, decoderPath);
        model.eval();
        WeightFiles.LoadInto(model.DecoderModule, [decoderPath], rename: key => Shift(key, -1));
        if (encoderPath is not null)
            WeightFiles.LoadInto(model.EncoderModule!, [encoderPath], rename: key => Shift(key, 0));
        return model;
    }

    /// <summary>"N.rest" → "layers.{N+offset}.rest".</summary>
    static string Shift(string key, int offset)
    {
        var m = IndexedKey().Match(key);
        return m.Success ? $"layers.{int.Parse(m.Groups[1].Value) + offset}.{m.Groups[2].Value}" : key;
    }

    static SortedDictionary<int, Dictionary<string, long[]>> Shapes(string path)
    {
        using var file = TensorFiles.Open(path);
        var layers = new SortedDictionary<int, Dictionary<string, long[]>>();
        foreach (var h in file.Headers)
        {
            var m = IndexedKey().Match(h.Name);
            if (!m.Success)
                throw new InvalidDataException($"{path}: key '{h.Name}' is not in TAESD's layout (N.weight, N.conv.K.weight).");
            int index = int.Parse(m.Groups[1].Value);
            if (!layers.TryGetValue(index, out var entries)) layers[index] = entries = [];
            entries[m.Groups[2].Value] = h.Shape;
        }
        return layers;
    }

    /// <summary>The config the keys describe: in order, convs (<c>weight</c>, 4-D) and blocks (<c>conv.0.weight</c>).</summary>
    static AutoencoderTinyConfig Infer(SortedDictionary<int, Dictionary<string, long[]>> decoder, SortedDictionary<int, Dictionary<string, long[]>>? encoder, string path)
    {
        static List<(bool IsConv, long[] Shape)> Sequence(SortedDictionary<int, Dictionary<string, long[]>> layers, string path) =>
            [.. layers.Values.Select(e => e.TryGetValue("weight", out var w) && w.Length == 4 ? (true, w)
                : e.TryGetValue("conv.0.weight", out var b) ? (false, b)
                : throw new InvalidDataException($"{path}: a layer with keys {string.Join(", ", e.Keys)} is neither a conv nor a TAESD block."))];

        var dec = Sequence(decoder, path);
        if (dec.Count < 2 || !dec[0].IsConv || !dec[^1].IsConv)
            throw new InvalidDataException($"{path}: not a TAESD decoder (it must start and end with a conv).");
        var (decBlocks, decWidths) = (new List<int>(), new List<int>());
        int count = 0;
        foreach (var (isConv, shape) in dec.Skip(1))
        {
            if (!isConv) { count++; continue; }
            decBlocks.Add(count);
            decWidths.Add((int)shape[1]);
            count = 0;
        }
        var config = new AutoencoderTinyConfig
        {
            LatentChannels = (int)dec[0].Shape[1],
            OutChannels = (int)dec[^1].Shape[0],
            DecoderBlockOutChannels = [.. decWidths],
            NumDecoderBlocks = [.. decBlocks],
            NumEncoderBlocks = [],
            EncoderBlockOutChannels = [],
        };
        if (encoder is not null)
        {
            var enc = Sequence(encoder, path);
            if (enc.Count < 2 || !enc[0].IsConv || !enc[^1].IsConv || (int)enc[^1].Shape[0] != config.LatentChannels)
                throw new InvalidDataException($"{path}: the encoder next to it is not a TAESD encoder for {config.LatentChannels}-channel latents.");
            var (encBlocks, encWidths) = (new List<int>(), new List<int>());
            foreach (var (isConv, shape) in enc.SkipLast(1))
            {
                if (isConv) { encBlocks.Add(0); encWidths.Add((int)shape[0]); }
                else encBlocks[^1]++;
            }
            config = config with { InChannels = (int)enc[0].Shape[1], NumEncoderBlocks = [.. encBlocks], EncoderBlockOutChannels = [.. encWidths] };
        }
        return config.Validated(path);
    }
}
