using System.Text.Json;
using static TorchSharp.torch;

namespace SharpDiffusion.Loading;

/// <summary>
/// Sharded weights read as one file: a <c>*.safetensors.index.json</c> (or <c>*.bin.index.json</c>) whose
/// <c>weight_map</c> names, for each tensor, the shard beside it that holds it (as transformers' and diffusers'
/// save_pretrained write them, e.g. <c>diffusion_pytorch_model-00001-of-00002.safetensors</c>, or for a variant
/// <c>diffusion_pytorch_model.fp16-00001-of-00002.safetensors</c> under <c>diffusion_pytorch_model.safetensors.index.fp16.json</c>).
/// Every shard is opened, and so checked against its own size, when the index is; a missing or unreadable shard, or one
/// without a tensor the index gives it, is a one-line error naming the shard and the index.
/// </summary>
public sealed class ShardedTensorFile : ITensorFile
{
    readonly List<ITensorFile> _shards;
    readonly Dictionary<string, ITensorFile> _owner;

    /// <summary>The index file.</summary>
    public string Path { get; }
    public IReadOnlyList<TensorHeader> Headers { get; }
    /// <summary>The shard files, in the order the index first names them.</summary>
    public IReadOnlyList<string> ShardPaths => _shards.Select(s => s.Path).ToList();

    ShardedTensorFile(string path, List<ITensorFile> shards, Dictionary<string, ITensorFile> owner, List<TensorHeader> headers)
    {
        (Path, _shards, _owner, Headers) = (path, shards, owner, headers);
    }

    public static ShardedTensorFile Open(string indexPath)
    {
        var weightMap = ReadWeightMap(indexPath);
        string dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(indexPath))!;
        var shards = new List<ITensorFile>();
        try
        {
            var byName = new Dictionary<string, ITensorFile>(StringComparer.Ordinal);
            foreach (string shardName in weightMap.Values.Distinct())
                shards.Add(byName[shardName] = OpenShard(indexPath, dir, shardName));

            var owner = new Dictionary<string, ITensorFile>(StringComparer.Ordinal);
            foreach (var (tensor, shardName) in weightMap)
            {
                var shard = byName[shardName];
                if (!shard.Contains(tensor))
                    throw new InvalidDataException($"Shard {shard.Path} does not hold tensor '{tensor}', which the index {indexPath} places there " +
                        "(the shard and the index are from different downloads?). Re-download the component folder.");
                owner[tensor] = shard;
            }
            // Headers follow the shards' own order; a tensor a shard holds but the index does not name is left out, as
            // transformers and diffusers load only what the weight_map lists.
            var headers = shards.SelectMany(s => s.Headers.Where(h => owner.TryGetValue(h.Name, out var o) && o == s)).ToList();
            return new ShardedTensorFile(indexPath, shards, owner, headers);
        }
        catch
        {
            foreach (var shard in shards) shard.Dispose();
            throw;
        }
    }

    static Dictionary<string, string> ReadWeightMap(string indexPath)
    {
        if (!File.Exists(indexPath))
            throw new FileNotFoundException($"Shard index not found: {indexPath}", indexPath);
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllText(indexPath)); }
        catch (JsonException e) { throw new InvalidDataException($"Shard index {indexPath} is not valid JSON ({e.Message}). Re-download it."); }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"Shard index {indexPath} has no weight_map object (tensor name → shard file). Re-download it.");
            var weightMap = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var p in map.EnumerateObject())
            {
                string? shard = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString() : null;
                // A shard is a file beside the index: a path elsewhere would read files the download never held.
                if (string.IsNullOrEmpty(shard) || shard != System.IO.Path.GetFileName(shard) || shard is "." or "..")
                    throw new InvalidDataException($"Shard index {indexPath} maps tensor '{p.Name}' to {p.Value.GetRawText()}, not a file name beside the index.");
                if (!weightMap.TryAdd(p.Name, shard))
                    throw new InvalidDataException($"Shard index {indexPath} lists tensor '{p.Name}' twice.");
            }
            if (weightMap.Count == 0)
                throw new InvalidDataException($"Shard index {indexPath} has an empty weight_map. Re-download it.");
            return weightMap;
        }
    }

    static ITensorFile OpenShard(string indexPath, string dir, string shardName)
    {
        string path = System.IO.Path.Combine(dir, shardName);
        if (!File.Exists(path))
            throw new FileNotFoundException($"Shard {path} named by {indexPath} is missing (incomplete download?). Download it again.", path);
        try
        {
            return TensorFiles.Open(path);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"Shard {path} named by {indexPath} cannot be read (truncated or corrupt download?): {e.Message}", e);
        }
    }

    public bool Contains(string name) => _owner.ContainsKey(name);

    ITensorFile Owner(string name) =>
        _owner.TryGetValue(name, out var shard) ? shard : throw new KeyNotFoundException($"Tensor '{name}' is not in {Path}");

    public Tensor Load(string name) => Owner(name).Load(name);

    public Tensor LoadRaw(string name) => Owner(name).LoadRaw(name);
    public CompactWeight? LoadCompact(string name, ScalarType? computeDType = null) => Owner(name).LoadCompact(name, computeDType);

    public bool ReadsInParallel => _shards.All(s => s.ReadsInParallel);

    public void ReadInto(string name, Tensor destination) => Owner(name).ReadInto(name, destination);

    public void Dispose()
    {
        foreach (var shard in _shards) shard.Dispose();
    }
}
