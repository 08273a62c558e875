using System.Globalization;

namespace SharpDiffusion.Cli;

/// <summary>Thrown for bad command-line input: printed as one line, exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>A small parser for "--name value", "--name=value", repeated options and flags.</summary>
public sealed class CommandLine
{
    readonly Dictionary<string, List<string>> _values = new(StringComparer.Ordinal);
    readonly HashSet<string> _flags = new(StringComparer.Ordinal);
    readonly HashSet<string> _used = new(StringComparer.Ordinal);

    public IReadOnlyList<string> Positionals { get; }

    public CommandLine(IEnumerable<string> args, IReadOnlySet<string> flagNames)
    {
        var positionals = new List<string>();
        var list = args.ToList();
        for (int i = 0; i < list.Count; i++)
        {
            string a = list[i];
            if (!a.StartsWith("--", StringComparison.Ordinal) || a == "--")
            {
                positionals.Add(a);
                continue;
            }
            string name = a[2..], value;
            int eq = name.IndexOf('=');
            if (eq >= 0)
            {
                value = name[(eq + 1)..];
                name = name[..eq];
            }
            else if (flagNames.Contains(name))
            {
                _flags.Add(name);
                continue;
            }
            else if (i + 1 < list.Count)
                value = list[++i];
            else
                throw new UsageException($"Option --{name} needs a value.");
            if (!_values.TryGetValue(name, out var values))
                _values[name] = values = [];
            values.Add(value);
        }
        Positionals = positionals;
    }

    public bool Flag(string name)
    {
        _used.Add(name);
        return _flags.Contains(name);
    }

    public IReadOnlyList<string> All(string name)
    {
        _used.Add(name);
        return _values.TryGetValue(name, out var v) ? v : [];
    }

    public string? String(string name)
    {
        var all = All(name);
        if (all.Count > 1)
            throw new UsageException($"Option --{name} was given {all.Count} times; give it once.");
        return all.Count == 1 ? all[0] : null;
    }

    public int? Int(string name)
    {
        string? s = String(name);
        if (s is null) return null;
        return int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v)
            ? v : throw new UsageException($"Option --{name} expects a whole number, got '{s}'.");
    }

    public long? Long(string name)
    {
        string? s = String(name);
        if (s is null) return null;
        return long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out long v)
            ? v : throw new UsageException($"Option --{name} expects a whole number, got '{s}'.");
    }

    public double? Double(string name)
    {
        string? s = String(name);
        if (s is null) return null;
        return double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && double.IsFinite(v)
            ? v : throw new UsageException($"Option --{name} expects a number, got '{s}'.");
    }

    /// <summary>Rejects options nobody asked for (typos), naming them.</summary>
    public void RejectUnknown()
    {
        var unknown = _values.Keys.Concat(_flags).Where(k => !_used.Contains(k)).ToList();
        if (unknown.Count > 0)
            throw new UsageException($"Unknown option{(unknown.Count > 1 ? "s" : "")}: {string.Join(", ", unknown.Select(u => "--" + u))}. See --help.");
    }
}
