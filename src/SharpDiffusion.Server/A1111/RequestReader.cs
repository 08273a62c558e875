using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace SharpDiffusion.Server.A1111;

/// <summary>A request body field that has the wrong type or value; collected and answered as one 422.</summary>
public sealed record FieldError(string Field, string Message, string Type)
{
    public JsonObject ToJson() => new()
    {
        ["loc"] = new JsonArray("body", Field),
        ["msg"] = Message,
        ["type"] = Type,
    };
}

/// <summary>Thrown with every field error of a request (422).</summary>
public sealed class RequestValidationException(IReadOnlyList<FieldError> errors)
    : Exception(string.Join("; ", errors.Select(e => $"{e.Field}: {e.Message}")))
{
    public IReadOnlyList<FieldError> Errors => errors;
}

/// <summary>
/// Reads typed fields of a JSON body as pydantic does for AUTOMATIC1111: a missing or null field takes its default,
/// unknown fields are ignored, numbers given as numeric strings are accepted, anything else of the wrong type is an
/// error naming the field (all of them are reported together).
/// </summary>
public sealed class RequestReader(JsonObject body)
{
    readonly List<FieldError> _errors = [];

    public JsonObject Body => body;

    JsonNode? Node(string name) => body.TryGetPropertyValue(name, out var node) ? node : null;

    public bool Has(string name) => Node(name) is not null;

    public string? String(string name, string? fallback = null)
    {
        var node = Node(name);
        if (node is null) return fallback;
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.String) return v.GetValue<string>();
        _errors.Add(new FieldError(name, "str type expected", "type_error.str"));
        return fallback;
    }

    public long Long(string name, long fallback, long min = long.MinValue, long max = long.MaxValue)
    {
        var node = Node(name);
        if (node is null) return fallback;
        double? d = Number(node);
        if (d is not double x || x != Math.Floor(x) || Math.Abs(x) > 9.2e18)
        {
            _errors.Add(new FieldError(name, "value is not a valid integer", "type_error.integer"));
            return fallback;
        }
        if (x < min || x > max)
        {
            _errors.Add(new FieldError(name, $"must be between {min} and {max}; got {x.ToString(CultureInfo.InvariantCulture)}", "value_error.number.range"));
            return fallback;
        }
        return (long)x;
    }

    public int Int(string name, int fallback, int min = int.MinValue, int max = int.MaxValue) => (int)Long(name, fallback, min, max);

    public double Double(string name, double fallback, double min = double.MinValue, double max = double.MaxValue)
    {
        var node = Node(name);
        if (node is null) return fallback;
        if (Number(node) is not double x || !double.IsFinite(x))
        {
            _errors.Add(new FieldError(name, "value is not a valid float", "type_error.float"));
            return fallback;
        }
        if (x < min || x > max)
        {
            _errors.Add(new FieldError(name, $"must be between {min.ToString(CultureInfo.InvariantCulture)} and {max.ToString(CultureInfo.InvariantCulture)}; got {x.ToString(CultureInfo.InvariantCulture)}", "value_error.number.range"));
            return fallback;
        }
        return x;
    }

    public bool Bool(string name, bool fallback)
    {
        var node = Node(name);
        if (node is null) return fallback;
        if (node is JsonValue v)
        {
            switch (v.GetValueKind())
            {
                case JsonValueKind.True: return true;
                case JsonValueKind.False: return false;
                case JsonValueKind.Number when Number(v) is double d && d is 0 or 1: return d == 1;
                case JsonValueKind.String:
                    switch (v.GetValue<string>().ToLowerInvariant())
                    {
                        case "true" or "1" or "yes" or "on": return true;
                        case "false" or "0" or "no" or "off": return false;
                    }
                    break;
            }
        }
        _errors.Add(new FieldError(name, "value could not be parsed to a boolean", "type_error.bool"));
        return fallback;
    }

    public JsonObject? Object(string name)
    {
        var node = Node(name);
        if (node is null) return null;
        if (node is JsonObject o) return o;
        _errors.Add(new FieldError(name, "value is not a valid dict", "type_error.dict"));
        return null;
    }

    public IReadOnlyList<string>? Strings(string name)
    {
        var node = Node(name);
        if (node is null) return null;
        if (node is JsonArray a && a.All(x => x is JsonValue v && v.GetValueKind() == JsonValueKind.String))
            return a.Select(x => x!.GetValue<string>()).ToList();
        _errors.Add(new FieldError(name, "value is not a valid list of strings", "type_error.list"));
        return null;
    }

    public void Error(string field, string message, string type = "value_error") => _errors.Add(new FieldError(field, message, type));

    /// <summary>Throws every error found so far as one <see cref="RequestValidationException"/>.</summary>
    public void ThrowIfInvalid()
    {
        if (_errors.Count > 0) throw new RequestValidationException(_errors.ToList());
    }

    // A number is read from its JSON text: GetValue<double>() throws for a value built from a C# int (as the OpenAI
    // route builds its A1111 body), and only parsed values convert.
    static double? Number(JsonNode node) => node is JsonValue v ? v.GetValueKind() switch
    {
        JsonValueKind.Number => double.Parse(v.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture),
        JsonValueKind.String when double.TryParse(v.GetValue<string>(), NumberStyles.Float, CultureInfo.InvariantCulture, out double d) => d,
        _ => null,
    } : null;
}
