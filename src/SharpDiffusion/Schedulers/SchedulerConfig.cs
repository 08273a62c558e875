using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace SharpDiffusion.Schedulers;

/// <summary>
/// A scheduler_config.json, read the way diffusers' <c>Class.from_config(config, **overrides)</c> reads it:
/// every getter takes the calling scheduler's own default, which is used when the key is missing, JSON
/// <c>null</c>, or listed in <c>_use_default_values</c> (diffusers records there the keys that were *not*
/// in the file, so a PNDM config handed to LMS gets LMS's <c>timestep_spacing</c>, not PNDM's).
/// Unknown keys are ignored. Immutable: <see cref="With"/> returns a copy. A copy made by <see cref="Recording"/>
/// also notes every key a getter is asked for, which is how a scheduler declares the options it has.
/// </summary>
public sealed class SchedulerConfig
{
    readonly JsonObject _values;
    readonly HashSet<string> _useDefaults;
    readonly ConcurrentDictionary<string, byte>? _asked;

    SchedulerConfig(JsonObject values, HashSet<string> useDefaults, ConcurrentDictionary<string, byte>? asked = null)
    {
        _values = values;
        _useDefaults = useDefaults;
        _asked = asked;
    }

    /// <summary>The same values, noting from now on every key a getter is asked for (<see cref="KeysAsked"/>): the
    /// config keys a scheduler reads are the options it has (<see cref="SchedulerFactory.Create(string?, SchedulerConfig, IReadOnlyDictionary{string, object?}?)"/>).</summary>
    public SchedulerConfig Recording() => new(_values, _useDefaults, new ConcurrentDictionary<string, byte>(StringComparer.Ordinal));

    /// <summary>The keys asked for so far through the getters, sorted (empty unless made by <see cref="Recording"/>).</summary>
    public IReadOnlyList<string> KeysAsked => _asked is null ? [] : [.. _asked.Keys.Order(StringComparer.Ordinal)];

    /// <summary>An empty config: every scheduler uses its own defaults.</summary>
    public static SchedulerConfig Empty { get; } = new(new JsonObject(), []);

    public static SchedulerConfig Load(string path)
    {
        try
        {
            return Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new FormatException($"{path}: not a valid scheduler config: {e.Message}", e);
        }
    }

    public static SchedulerConfig Parse(string json)
    {
        var node = JsonNode.Parse(QuoteNonFiniteLiterals(json), documentOptions: new() { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        if (node is not JsonObject obj)
            throw new JsonException("a scheduler config must be a JSON object");
        var useDefaults = new HashSet<string>(StringComparer.Ordinal);
        if (obj["_use_default_values"] is JsonArray listed)
            foreach (var key in listed)
                if (key?.GetValueKind() == JsonValueKind.String)
                    useDefaults.Add(key.GetValue<string>());
        return new SchedulerConfig(obj, useDefaults);
    }

    /// <summary><c>_class_name</c>: the diffusers class this config was saved from (null if absent).</summary>
    public string? ClassName => Raw("_class_name") is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;

    /// <summary>True when the key has an explicit (non-default) value.</summary>
    public bool Has(string key) => Raw(key) is not null;

    /// <summary>A copy with <paramref name="key"/> set, like a <c>from_config(..., key=value)</c> keyword (still
    /// recording if this one is).
    /// <paramref name="value"/>: string, bool, number, array of numbers/strings, or null.</summary>
    public SchedulerConfig With(string key, object? value)
    {
        var values = (JsonObject)_values.DeepClone();
        values[key] = value is null ? null : JsonSerializer.SerializeToNode(value);
        var useDefaults = new HashSet<string>(_useDefaults, StringComparer.Ordinal);
        useDefaults.Remove(key);
        return new SchedulerConfig(values, useDefaults, _asked); // a recording config's copies note into the same list
    }

    public string GetString(string key, string defaultValue) => GetStringOrNull(key) ?? defaultValue;

    public string? GetStringOrNull(string key) => Read(key) switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        var other => throw Invalid(key, other, "a string"),
    };

    public double GetDouble(string key, double defaultValue) => GetDoubleOrNull(key) ?? defaultValue;

    public double? GetDoubleOrNull(string key) => Read(key) is { } node ? ToDouble(key, node) : null;

    public int GetInt(string key, int defaultValue)
    {
        if (Read(key) is not { } node)
            return defaultValue;
        double d = ToDouble(key, node);
        if (d != Math.Floor(d) || d < int.MinValue || d > int.MaxValue)
            throw Invalid(key, node, "an integer");
        return (int)d;
    }

    public bool GetBool(string key, bool defaultValue) => Read(key) switch
    {
        null => defaultValue,
        JsonValue v when v.GetValueKind() is JsonValueKind.True or JsonValueKind.False => v.GetValue<bool>(),
        var other => throw Invalid(key, other, "true or false"),
    };

    /// <summary>A number array such as <c>trained_betas</c>; null when missing or null.</summary>
    public double[]? GetDoubleArray(string key) => Read(key) switch
    {
        null => null,
        JsonArray a => a.Select(x => x is null ? throw Invalid(key, a, "an array of numbers") : ToDouble(key, x)).ToArray(),
        var other => throw Invalid(key, other, "an array of numbers"),
    };

    /// <summary>An integer array such as UniPC's <c>disable_corrector</c>; the default when missing or null.</summary>
    public int[] GetIntArray(string key, int[] defaultValue) => GetDoubleArray(key) is { } values
        ? values.Select(d => d == Math.Floor(d) ? (int)d : throw Invalid(key, Raw(key)!, "an array of integers")).ToArray()
        : defaultValue;

    /// <summary>The keys with explicit values (file keys not in <c>_use_default_values</c>, plus overrides).</summary>
    public IEnumerable<string> Keys => _values.Where(kv => !_useDefaults.Contains(kv.Key) && kv.Key != "_use_default_values").Select(kv => kv.Key);

    public string ToJson() => _values.ToJsonString(new JsonSerializerOptions { WriteIndented = true });

    public override string ToString() => ToJson();

    /// <summary><see cref="Raw"/> for the getters: the key is one the caller has, so a recording copy notes it
    /// (<see cref="Has"/> and <see cref="ClassName"/> look without noting).</summary>
    JsonNode? Read(string key)
    {
        _asked?.TryAdd(key, 0);
        return Raw(key);
    }

    JsonNode? Raw(string key) =>
        _useDefaults.Contains(key) ? null : _values.TryGetPropertyValue(key, out var node) ? node : null;

    static double ToDouble(string key, JsonNode node)
    {
        if (node is JsonValue v)
        {
            switch (v.GetValueKind())
            {
                case JsonValueKind.Number:
                    return v.GetValue<double>();
                case JsonValueKind.String when NonFinite.TryGetValue(v.GetValue<string>(), out double d):
                    return d;
            }
        }
        throw Invalid(key, node, "a number");
    }

    static FormatException Invalid(string key, JsonNode? node, string expected) =>
        new($"scheduler config key '{key}' must be {expected}, got {node?.ToJsonString() ?? "null"}");

    static readonly Dictionary<string, double> NonFinite = new(StringComparer.Ordinal)
    {
        ["Infinity"] = double.PositiveInfinity,
        ["-Infinity"] = double.NegativeInfinity,
        ["NaN"] = double.NaN,
    };

    /// <summary>Python's json writes <c>-Infinity</c>, <c>Infinity</c> and <c>NaN</c> bare (e.g. DPM-Solver's
    /// <c>lambda_min_clipped</c>); System.Text.Json rejects them, so they become strings that
    /// <see cref="ToDouble"/> understands.</summary>
    internal static string QuoteNonFiniteLiterals(string json)
    {
        if (!json.Contains("Infinity") && !json.Contains("NaN"))
            return json;
        var sb = new StringBuilder(json.Length + 16);
        bool inString = false;
        for (int i = 0; i < json.Length; i++)
        {
            char c = json[i];
            if (inString)
            {
                sb.Append(c);
                if (c == '\\' && i + 1 < json.Length)
                    sb.Append(json[++i]);
                else if (c == '"')
                    inString = false;
                continue;
            }
            if (c == '"')
            {
                inString = true;
                sb.Append(c);
                continue;
            }
            string? literal = NonFinite.Keys.FirstOrDefault(k => string.CompareOrdinal(json, i, k, 0, k.Length) == 0);
            if (literal is not null)
            {
                sb.Append('"').Append(literal).Append('"');
                i += literal.Length - 1;
                continue;
            }
            sb.Append(c);
        }
        return sb.ToString();
    }
}
