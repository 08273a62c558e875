using SharpDiffusion.Pipelines;

namespace SharpDiffusion.Cli;

/// <summary>
/// One axis of `grid`: "NAME=VALUES", NAME any generate option that changes a picture (without the dashes; also
/// AUTOMATIC1111's axis names: cfg, sampler, var-seed, var-strength, prompt-sr), VALUES in A1111's syntax
/// (<see cref="AxisValues"/>). Options that choose or load the model (--model, --vae, --lora, --dtype, ...) are not axes:
/// the grid opens its model once.
/// </summary>
public sealed record GridAxis(string Option, string Label, IReadOnlyList<string> Values, IReadOnlyList<string> Labels, string Text)
{
    /// <summary>"Prompt S/R": the first value is searched for in the prompts, each value replaces it in turn.</summary>
    public const string PromptSearchReplace = "prompt-sr";

    static readonly Dictionary<string, string> Aliases = new(StringComparer.OrdinalIgnoreCase)
    {
        ["cfg"] = "guidance", ["cfg-scale"] = "guidance", ["sampler"] = "scheduler", ["var-seed"] = "variation-seed",
        ["var.-seed"] = "variation-seed", ["var-strength"] = "variation-strength", ["var.-strength"] = "variation-strength",
        ["prompt-s/r"] = PromptSearchReplace, ["denoising"] = "strength",
    };

    /// <summary>A1111's axis labels (scripts/xyz_grid.py) for the options it also has; others show as --NAME.</summary>
    static readonly Dictionary<string, string> A1111Labels = new()
    {
        ["seed"] = "Seed", ["variation-seed"] = "Var. seed", ["variation-strength"] = "Var. strength", ["steps"] = "Steps",
        ["hires-steps"] = "Hires steps", ["guidance"] = "CFG Scale", [PromptSearchReplace] = "Prompt S/R", ["scheduler"] = "Sampler",
        ["hires-sampler"] = "Hires sampler", ["eta"] = "Eta", ["clip-skip"] = "Clip skip", ["strength"] = "Denoising",
        ["hires-upscaler"] = "Hires upscaler",
    };

    /// <summary>Options that choose, load or place things once per run: not axes.</summary>
    static readonly HashSet<string> NotAxes =
    [
        "model", "config", "text-encoder-config", "transformer", "text-encoder-2-config", "text-encoder", "variant", "device", "dtype",
        "threads", "vae", "refiner", "single-file-config", "embedding", "embedding-dir", "lora", "output", "x", "y", "z", "yes", "margin",
        .. FastPathOptions.Options.Select(o => o.Name),
    ];

    /// <summary>The axis of --<paramref name="which"/> "NAME=VALUES"; null when not given.</summary>
    public static GridAxis? Parse(CommandLine cl, string which)
    {
        if (cl.String(which) is not { } text) return null;
        int eq = text.IndexOf('=');
        if (eq <= 0)
            throw new UsageException($"--{which} takes NAME=VALUES, e.g. --{which} \"steps=10,20,30\"; got '{text}'.");
        string name = text[..eq].Trim().TrimStart('-').Replace('_', '-').Replace(' ', '-').ToLowerInvariant();
        name = Aliases.GetValueOrDefault(name, name);
        var kind = name == PromptSearchReplace ? OptionKind.Text : cl.KindOf(name);
        if (kind is null || NotAxes.Contains(name))
            throw new UsageException(kind is null
                ? $"--{which}: '{text[..eq]}' is not a generate option; use an option's name without the dashes (steps, guidance, scheduler, seed, ...) or cfg, sampler, prompt-sr."
                : $"--{which}: --{name} cannot be an axis: the grid opens one model with one set of files; vary the generation options (steps, guidance, scheduler, seed, ...).");
        var type = kind switch
        {
            OptionKind.Integer or OptionKind.Long => AxisValueType.Integer,
            OptionKind.Number => AxisValueType.Number,
            _ => AxisValueType.Text,
        };
        string valuesText = text[(eq + 1)..];
        IReadOnlyList<string> values;
        try { values = AxisValues.Parse(valuesText, type, $"--{which} {name}"); }
        catch (ArgumentException e) { throw new UsageException(e.Message); }
        if (name is "seed" or "variation-seed") // A1111's fix_axis_seeds: -1 becomes one random seed, the same in every cell
            values = values.Select(v => v == "-1" ? Random.Shared.NextInt64(0, uint.MaxValue).ToString(System.Globalization.CultureInfo.InvariantCulture) : v).ToList();
        string label = A1111Labels.GetValueOrDefault(name, $"--{name}");
        // A1111's format_value_add_label ("Steps: 10", floats as Python writes them: "CFG Scale: 4.0"); the sampler and
        // Prompt S/R show the value alone.
        var labels = values.Select(v => name is "scheduler" or PromptSearchReplace ? v
            : $"{label}: {(type == AxisValueType.Number && v.IndexOfAny(['.', 'E', 'e']) < 0 ? v + ".0" : v)}").ToList();
        return new GridAxis(name, label, values, labels, valuesText.Trim());
    }

    /// <summary>This axis's value <paramref name="index"/> applied to a cell: as an option override, or (Prompt S/R) later.</summary>
    public void AddTo(Dictionary<string, string> overrides, int index)
    {
        if (Option != PromptSearchReplace) overrides[Option] = Values[index];
    }

    /// <summary>Prompt S/R on built options: the first value replaced by value <paramref name="index"/> in every prompt and
    /// negative prompt; A1111 refuses a search text found in neither.</summary>
    public GenerationOptions Apply(GenerationOptions options, int index)
    {
        if (Option != PromptSearchReplace) return options;
        string search = Values[0], value = Values[index];
        if (!options.Prompts.Any(p => p.Contains(search, StringComparison.Ordinal)) && !(options.NegativePrompts ?? []).Any(n => n.Contains(search, StringComparison.Ordinal)))
            throw new UsageException($"Prompt S/R did not find '{search}' in the prompt or negative prompt.");
        return options with
        {
            Prompts = options.Prompts.Select(p => p.Replace(search, value, StringComparison.Ordinal)).ToList(),
            NegativePrompts = options.NegativePrompts?.Select(n => n.Replace(search, value, StringComparison.Ordinal)).ToList(),
        };
    }
}
