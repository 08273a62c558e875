using System.Text.Json;
using System.Text.Json.Nodes;

namespace SharpDiffusion.Configuration;

/// <summary>
/// A component's config.json read the way diffusers/transformers read it: unknown keys are ignored,
/// missing (or null) keys take the caller's default, and an int where a per-block list is allowed is repeated.
/// </summary>
public sealed class JsonConfig
{
    readonly JsonObject _root;

    public string Source { get; }

    public JsonConfig(JsonObject root, string source)
    {
        _root = root;
        Source = source;
    }

    public static JsonConfig Load(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"Config file not found: {path}", path);
        return Parse(File.ReadAllText(path), path);
    }

    public static JsonConfig Parse(string json, string source = "<json>")
    {
        JsonNode? node;
        try { node = JsonNode.Parse(json); }
        catch (JsonException e) { throw new InvalidDataException($"Config {source} is not valid JSON: {e.Message}", e); }
        return node is JsonObject o ? new JsonConfig(o, source) : throw new InvalidDataException($"Config {source} is not a JSON object");
    }

    public bool Has(string key) => _root.TryGetPropertyValue(key, out var v) && v is not null;

    JsonNode? Get(string key) => _root.TryGetPropertyValue(key, out var v) ? v : null;

    T Read<T>(string key, T fallback, Func<JsonNode, T> read)
    {
        var node = Get(key);
        if (node is null) return fallback;
        try { return read(node); }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"Config {Source}: key '{key}' has an unexpected value {node.ToJsonString()}", e);
        }
    }

    public int GetInt(string key, int fallback) => Read(key, fallback, n => (int)n.GetValue<double>());
    public double GetDouble(string key, double fallback) => Read(key, fallback, n => n.GetValue<double>());
    public bool GetBool(string key, bool fallback) => Read(key, fallback, n => n.GetValue<bool>());
    public string GetString(string key, string fallback) => Read(key, fallback, n => n.GetValue<string>());
    public string? GetStringOrNull(string key) => Read<string?>(key, null, n => n.GetValue<string>());

    public int[] GetIntArray(string key, int[] fallback) =>
        Read(key, fallback, n => n.AsArray().Select(e => (int)e!.GetValue<double>()).ToArray());

    public string[] GetStringArray(string key, string[] fallback) =>
        Read(key, fallback, n => n.AsArray().Select(e => e!.GetValue<string>()).ToArray());

    /// <summary>An int or a list of ints: one value per block (diffusers accepts both).</summary>
    public int[] GetPerBlockInt(string key, int fallback, int blocks)
    {
        var node = Get(key);
        if (node is null) return Enumerable.Repeat(fallback, blocks).ToArray();
        if (node is JsonArray array)
        {
            var values = GetIntArray(key, []);
            if (values.Length != blocks)
                throw new InvalidDataException($"Config {Source}: '{key}' has {values.Length} entries but the model has {blocks} blocks");
            return values;
        }
        return Enumerable.Repeat(GetInt(key, fallback), blocks).ToArray();
    }

    /// <summary>A bool or a list of bools, one per block.</summary>
    public bool[] GetPerBlockBool(string key, bool fallback, int blocks)
    {
        var node = Get(key);
        if (node is JsonArray array)
        {
            if (array.Count != blocks)
                throw new InvalidDataException($"Config {Source}: '{key}' has {array.Count} entries but the model has {blocks} blocks");
            return array.Select(e => e!.GetValue<bool>()).ToArray();
        }
        return Enumerable.Repeat(GetBool(key, fallback), blocks).ToArray();
    }

    public bool IsArray(string key) => Get(key) is JsonArray;
}
