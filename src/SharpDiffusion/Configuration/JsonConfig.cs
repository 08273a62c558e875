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
        // JsonNode builds an object's dictionary on first use and throws there for a repeated key: do it now.
        try { Materialize(node); }
        catch (ArgumentException e) { throw new InvalidDataException($"Config {source} repeats a key ({e.Message}); which value is meant is ambiguous", e); }
        return node is JsonObject o ? new JsonConfig(o, source) : throw new InvalidDataException($"Config {source} is not a JSON object");
    }

    static void Materialize(JsonNode? node)
    {
        if (node is JsonObject o)
            foreach (var (_, v) in o) Materialize(v);
        else if (node is JsonArray a)
            foreach (var v in a) Materialize(v);
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
            throw Invalid(key, node, "it has the wrong type", e);
        }
    }

    /// <summary>"Config {file}: '{key}' is {value}; {rule}": one line naming the file, the key, the value and the rule.</summary>
    public InvalidDataException Invalid(string key, object? value, string rule, Exception? inner = null)
    {
        string shown = value switch
        {
            null => "null",
            JsonNode n => n.ToJsonString(),
            System.Collections.IEnumerable list and not string => "[" + string.Join(", ", list.Cast<object>()) + "]",
            _ => Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) ?? "",
        };
        if (shown.Length > 80) shown = shown[..77] + "...";
        return new InvalidDataException($"Config {Source}: '{key}' is {shown}; {rule}.", inner);
    }

    // A whole number in int range: 320 and 320.0 as Python's int() would take them, not 0.5, "320", true or 1e30.
    int ToInt(string key, JsonNode? node, string rule)
    {
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.Number)
        {
            double d = v.GetValue<double>();
            if (d == Math.Floor(d) && d >= int.MinValue && d <= int.MaxValue)
                return (int)d;
        }
        throw Invalid(key, node, rule);
    }

    static string IntRule(int min, int max) =>
        max == int.MaxValue ? $"it must be an integer >= {min}" : $"it must be an integer from {min} to {max}";

    /// <summary>An integer in [<paramref name="min"/>, <paramref name="max"/>]; anything else names key, value and rule.</summary>
    public int GetInt(string key, int fallback, int min = int.MinValue, int max = int.MaxValue)
    {
        var node = Get(key);
        if (node is null) return fallback;
        string rule = IntRule(min, max);
        int value = ToInt(key, node, rule);
        return value >= min && value <= max ? value : throw Invalid(key, node, rule);
    }

    /// <summary>A finite number above <paramref name="above"/> (exclusive) when given.</summary>
    public double GetDouble(string key, double fallback, double? above = null)
    {
        var node = Get(key);
        if (node is null) return fallback;
        string rule = above is { } a ? $"it must be a finite number > {a.ToString(System.Globalization.CultureInfo.InvariantCulture)}" : "it must be a finite number";
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.Number)
        {
            double d = v.GetValue<double>();
            if (double.IsFinite(d) && (above is null || d > above))
                return d;
        }
        throw Invalid(key, node, rule);
    }

    public bool GetBool(string key, bool fallback) => Read(key, fallback, n => n.GetValue<bool>());
    public string GetString(string key, string fallback) => Read(key, fallback, n => n.GetValue<string>());
    public string? GetStringOrNull(string key) => Read<string?>(key, null, n => n.GetValue<string>());

    public int[] GetIntArray(string key, int[] fallback, int min = int.MinValue, int max = int.MaxValue)
    {
        var node = Get(key);
        if (node is null) return fallback;
        string rule = $"{IntRule(min, max)} in every entry";
        if (node is not JsonArray array)
            throw Invalid(key, node, "it must be a list of integers");
        var values = new int[array.Count];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = ToInt(key, array[i], rule) is var x && x >= min && x <= max ? x : throw Invalid(key, node, rule);
        }
        return values;
    }

    public string[] GetStringArray(string key, string[] fallback)
    {
        var node = Get(key);
        if (node is null) return fallback;
        if (node is JsonArray array && array.All(e => e is JsonValue v && v.GetValueKind() == JsonValueKind.String))
            return array.Select(e => e!.GetValue<string>()).ToArray();
        throw Invalid(key, node, "it must be a list of strings");
    }

    /// <summary>An int or a list of ints: one value per block (diffusers accepts both).</summary>
    public int[] GetPerBlockInt(string key, int fallback, int blocks, int min = int.MinValue, int max = int.MaxValue)
    {
        var node = Get(key);
        if (node is null) return Enumerable.Repeat(fallback, blocks).ToArray();
        if (node is JsonArray)
        {
            var values = GetIntArray(key, [], min, max);
            if (values.Length != blocks)
                throw Invalid(key, node, $"it must have one entry per block ({blocks}), not {values.Length}");
            return values;
        }
        return Enumerable.Repeat(GetInt(key, fallback, min, max), blocks).ToArray();
    }

    /// <summary>A bool or a list of bools, one per block.</summary>
    public bool[] GetPerBlockBool(string key, bool fallback, int blocks)
    {
        var node = Get(key);
        if (node is JsonArray array)
        {
            if (array.Count != blocks)
                throw Invalid(key, node, $"it must have one entry per block ({blocks}), not {array.Count}");
            if (!array.All(e => e is JsonValue v && v.GetValueKind() is JsonValueKind.True or JsonValueKind.False))
                throw Invalid(key, node, "it must be a bool or a list of bools");
            return array.Select(e => e!.GetValue<bool>()).ToArray();
        }
        return Enumerable.Repeat(GetBool(key, fallback), blocks).ToArray();
    }

    public bool IsArray(string key) => Get(key) is JsonArray;
}
