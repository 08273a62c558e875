using System.Globalization;

namespace SharpDiffusion.Loading.SingleFile;

/// <summary>
/// The YAML subset the original LDM/CompVis configs (v1-inference.yaml, v2-inference-v.yaml, …) are written in:
/// block maps and lists by indentation, <c>key: value</c>, <c>- item</c>, flow lists <c>[ 1, 2 ]</c>, quoted strings
/// and <c>#</c> comments. Scalars stay strings until read as a number or bool. (No anchors, multi-line strings or
/// flow maps: these files have none, and a small reader keeps the library free of a YAML dependency.)
/// </summary>
public sealed class LdmYaml
{
    readonly object? _root;
    public string Source { get; }

    LdmYaml(object? root, string source) => (_root, Source) = (root, source);

    public static LdmYaml Load(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"Config file not found: {path}", path);
        return Parse(File.ReadAllText(path), path);
    }

    public static LdmYaml Parse(string text, string source = "<yaml>")
    {
        var lines = new List<(int Indent, string Text, int Number)>();
        int number = 0;
        foreach (string raw in text.Replace("\r\n", "\n").Split('\n'))
        {
            number++;
            if (raw.Contains('\t') && raw.TrimStart(' ').StartsWith('\t'))
                throw new InvalidDataException($"Config {source} line {number}: indentation with a tab (YAML allows only spaces)");
            string content = StripComment(raw).TrimEnd();
            if (content.Trim().Length == 0 || content.Trim() == "---") continue;
            int indent = content.Length - content.TrimStart(' ').Length;
            lines.Add((indent, content.Trim(), number));
        }
        int i = 0;
        var root = lines.Count == 0 ? null : ParseBlock(lines, ref i, lines[0].Indent, source);
        if (i < lines.Count)
            throw new InvalidDataException($"Config {source} line {lines[i].Number}: unexpected indentation");
        return new LdmYaml(root, source);
    }

    static string StripComment(string line)
    {
        char quote = '\0';
        for (int k = 0; k < line.Length; k++)
        {
            char c = line[k];
            if (quote != '\0') { if (c == quote) quote = '\0'; continue; }
            if (c is '"' or '\'') quote = c;
            else if (c == '#' && (k == 0 || line[k - 1] == ' ')) return line[..k];
        }
        return line;
    }

    static object ParseBlock(List<(int Indent, string Text, int Number)> lines, ref int i, int indent, string source)
    {
        bool isList = lines[i].Text == "-" || lines[i].Text.StartsWith("- ", StringComparison.Ordinal);
        if (isList)
        {
            var list = new List<object?>();
            while (i < lines.Count && lines[i].Indent == indent && (lines[i].Text == "-" || lines[i].Text.StartsWith("- ", StringComparison.Ordinal)))
            {
                string item = lines[i].Text[1..].Trim();
                if (item.Length == 0)
                {
                    i++;
                    list.Add(i < lines.Count && lines[i].Indent > indent ? ParseBlock(lines, ref i, lines[i].Indent, source) : null);
                }
                else if (KeyValue(item) is not null)
                {
                    // "- key: value" opens a map whose keys sit two columns in.
                    lines[i] = (indent + 2, item, lines[i].Number);
                    list.Add(ParseBlock(lines, ref i, indent + 2, source));
                }
                else
                {
                    list.Add(Scalar(item));
                    i++;
                }
            }
            return list;
        }

        var map = new Dictionary<string, object?>(StringComparer.Ordinal);
        while (i < lines.Count && lines[i].Indent == indent)
        {
            var (_, text, lineNumber) = lines[i];
            if (KeyValue(text) is not var (key, rest))
                throw new InvalidDataException($"Config {source} line {lineNumber}: expected 'key: value', got '{text}'");
            i++;
            object? value;
            if (rest.Length > 0) value = Scalar(rest);
            else if (i < lines.Count && lines[i].Indent > indent) value = ParseBlock(lines, ref i, lines[i].Indent, source);
            else if (i < lines.Count && lines[i].Indent == indent && lines[i].Text.StartsWith('-')) value = ParseBlock(lines, ref i, indent, source);
            else value = null;
            map[Unquote(key)] = value;
        }
        if (i < lines.Count && lines[i].Indent > indent)
            throw new InvalidDataException($"Config {source} line {lines[i].Number}: unexpected indentation");
        return map;
    }

    static (string Key, string Value)? KeyValue(string text)
    {
        if (text.StartsWith('[') || text.StartsWith('"') && !text.Contains("\":")) return null;
        int colon = text.IndexOf(": ", StringComparison.Ordinal);
        if (colon > 0) return (text[..colon].Trim(), text[(colon + 2)..].Trim());
        if (text.EndsWith(':')) return (text[..^1].Trim(), "");
        return null;
    }

    static object? Scalar(string text)
    {
        if (text.StartsWith('[') && text.EndsWith(']'))
        {
            string inner = text[1..^1].Trim();
            return inner.Length == 0 ? new List<object?>() : inner.Split(',').Select(p => Scalar(p.Trim())).ToList();
        }
        if (text is "null" or "~" or "None") return null;
        return Unquote(text);
    }

    static string Unquote(string s) =>
        s.Length >= 2 && (s[0] == '"' && s[^1] == '"' || s[0] == '\'' && s[^1] == '\'') ? s[1..^1] : s;

    /// <summary>The value at a dotted path (e.g. "model.params.unet_config.params.num_heads"); null when absent.</summary>
    public object? Get(string path)
    {
        object? node = _root;
        foreach (string part in path.Split('.'))
        {
            if (node is not Dictionary<string, object?> map || !map.TryGetValue(part, out node))
                return null;
        }
        return node;
    }

    public bool Has(string path) => Get(path) is not null;

    public string? String(string path) => Get(path) switch
    {
        null => null,
        string s => s,
        var other => throw Invalid(path, other, "it must be a single value"),
    };

    public double? Double(string path) => String(path) is { } s
        ? double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) && double.IsFinite(d) ? d : throw Invalid(path, s, "it must be a number")
        : null;

    public int? Int(string path) => Double(path) is { } d
        ? d == Math.Floor(d) && Math.Abs(d) < int.MaxValue ? (int)d : throw Invalid(path, d, "it must be a whole number")
        : null;

    public bool? Bool(string path) => String(path)?.ToLowerInvariant() switch
    {
        null => null,
        "true" or "yes" or "on" => true,
        "false" or "no" or "off" => false,
        var s => throw Invalid(path, s, "it must be true or false"),
    };

    /// <summary>A number or a list of numbers (one per UNet level, as <c>num_heads</c> may be).</summary>
    public int[]? IntOrList(string path) => Get(path) switch
    {
        null => null,
        List<object?> list => list.Select((e, k) => e is string s && int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v)
            ? v : throw Invalid(path, e, $"entry {k} must be a whole number")).ToArray(),
        _ => [Int(path)!.Value],
    };

    InvalidDataException Invalid(string path, object? value, string rule) =>
        new($"Config {Source}: '{path}' is {(value is List<object?> l ? "[" + string.Join(", ", l) + "]" : value)}; {rule}.");
}
