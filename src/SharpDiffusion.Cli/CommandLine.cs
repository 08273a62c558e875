using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace SharpDiffusion.Cli;

/// <summary>Thrown for bad command-line input: printed as one line, exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>What an option's value is.</summary>
public enum OptionKind { Text, Texts, Integer, Long, Number, Flag }

/// <summary>One option of a command, as its help shows it: <c>--name VALUE  help (default: …)</c>.</summary>
public sealed record OptionSpec(string Name, OptionKind Kind, string Help, string? ValueName = null, bool Hidden = false);

/// <summary>
/// The commands' options on System.CommandLine: each command declares a table of <see cref="OptionSpec"/>s; parsing,
/// typed values with one-line errors, help and shell completion (the [suggest] directive) come from the library,
/// and a command reads its values by name.
/// </summary>
public sealed class CommandLine
{
    readonly ParseResult _result;
    readonly IReadOnlyDictionary<string, Option> _options;
    readonly IReadOnlyDictionary<string, string> _overrides;

    CommandLine(ParseResult result, IReadOnlyDictionary<string, Option> options, IReadOnlyDictionary<string, string>? overrides = null) =>
        (_result, _options, _overrides) = (result, options, overrides ?? new Dictionary<string, string>());

    /// <summary>The same command line with some options' values replaced (an X/Y/Z plot cell): each value is text as it
    /// would be typed after --NAME, checked as that option's kind; a flag takes true/false.</summary>
    public CommandLine With(IReadOnlyDictionary<string, string> overrides)
    {
        foreach (var name in overrides.Keys)
            if (!_options.ContainsKey(name)) throw new InvalidOperationException($"The command declares no option --{name}.");
        var merged = new Dictionary<string, string>(_overrides);
        foreach (var (name, value) in overrides) merged[name] = value;
        return new CommandLine(_result, _options, merged);
    }

    /// <summary>An override's text as the option's type, with the one-line error System.CommandLine would give.</summary>
    static object? Convert(Option option, string text)
    {
        string name = option.Name;
        var inv = CultureInfo.InvariantCulture;
        return option switch
        {
            Option<string?> => text,
            Option<string[]> => new[] { text },
            Option<int?> => int.TryParse(text, NumberStyles.Integer, inv, out int i) ? i : throw new UsageException($"Option {name} expects a whole number, got '{text}'."),
            Option<long?> => long.TryParse(text, NumberStyles.Integer, inv, out long l) ? l : throw new UsageException($"Option {name} expects a whole number, got '{text}'."),
            Option<double?> => TryParseFinite(text, NumberStyles.Float, inv, out double d) ? d : throw new UsageException($"Option {name} expects a number, got '{text}'."),
            _ => text.ToLowerInvariant() switch
            {
                "true" or "yes" or "on" or "1" => true,
                "false" or "no" or "off" or "0" => false,
                _ => throw new UsageException($"Option {name} is a flag: give true or false, got '{text}'."),
            },
        };
    }

    /// <summary>A command whose action gets the parsed values.</summary>
    public static Command Define(string name, string description, IReadOnlyList<OptionSpec> specs, Func<CommandLine, int> run)
    {
        var command = new Command(name, description);
        var options = specs.ToDictionary(s => s.Name, Create);
        foreach (var option in options.Values)
            command.Options.Add(option);
        command.SetAction(result => run(new CommandLine(result, options)));
        return command;
    }

    static Option Create(OptionSpec spec)
    {
        string name = "--" + spec.Name;
        Option option = spec.Kind switch
        {
            OptionKind.Text => new Option<string?>(name),
            OptionKind.Texts => new Option<string[]>(name) { Arity = ArgumentArity.ZeroOrMore, AllowMultipleArgumentsPerToken = false },
            OptionKind.Integer => new Option<int?>(name) { CustomParser = r => Parse<int>(r, name, "a whole number", int.TryParse) },
            OptionKind.Long => new Option<long?>(name) { CustomParser = r => Parse<long>(r, name, "a whole number", long.TryParse) },
            OptionKind.Number => new Option<double?>(name) { CustomParser = r => Parse<double>(r, name, "a number", TryParseFinite) },
            _ => new Option<bool>(name),
        };
        option.Description = spec.Help;
        option.HelpName = spec.ValueName;
        option.Hidden = spec.Hidden;
        return option;
    }

    delegate bool TryParser<T>(string text, NumberStyles styles, IFormatProvider provider, out T value);

    static T? Parse<T>(ArgumentResult result, string name, string what, TryParser<T> parse) where T : struct
    {
        string text = result.Tokens.Count == 1 ? result.Tokens[0].Value : "";
        var styles = typeof(T) == typeof(double) ? NumberStyles.Float : NumberStyles.Integer;
        if (parse(text, styles, CultureInfo.InvariantCulture, out T value))
            return value;
        result.AddError($"Option {name} expects {what}, got '{text}'.");
        return null;
    }

    static bool TryParseFinite(string text, NumberStyles styles, IFormatProvider provider, out double value) =>
        double.TryParse(text, styles, provider, out value) && double.IsFinite(value);

    T Value<T>(string name) => _options.TryGetValue(name, out var option)
        ? _overrides.TryGetValue(name, out var text) ? (T)Convert(option, text)! : _result.GetValue((Option<T>)option)!
        : throw new InvalidOperationException($"The command declares no option --{name}.");

    /// <summary>The kind of value option <paramref name="name"/> takes; null when the command has no such option.</summary>
    public OptionKind? KindOf(string name) => _options.TryGetValue(name, out var option) ? option switch
    {
        Option<string?> => OptionKind.Text,
        Option<string[]> => OptionKind.Texts,
        Option<int?> => OptionKind.Integer,
        Option<long?> => OptionKind.Long,
        Option<double?> => OptionKind.Number,
        _ => OptionKind.Flag,
    } : null;

    public bool Flag(string name) => Value<bool>(name);
    public IReadOnlyList<string> All(string name) => Value<string[]?>(name) ?? [];
    public string? String(string name) => Value<string?>(name);
    public int? Int(string name) => Value<int?>(name);
    public long? Long(string name) => Value<long?>(name);
    public double? Double(string name) => Value<double?>(name);

    /// <summary>Whether the user gave the option at all.</summary>
    public bool Given(string name) => _options.TryGetValue(name, out var option)
        && (_overrides.ContainsKey(name) || _result.GetResult(option) is { Implicit: false });

    /// <summary>A WxH option ("512x768"), (0, 0) when absent.</summary>
    public (int Width, int Height) Size(string name)
    {
        if (String(name) is not { } text) return (0, 0);
        var parts = text.ToLowerInvariant().Split('x');
        if (parts.Length == 2 && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int w)
            && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int h) && w > 0 && h > 0)
            return (w, h);
        throw new UsageException($"--{name} takes WIDTHxHEIGHT, e.g. 512x768; got '{text}'.");
    }
}
