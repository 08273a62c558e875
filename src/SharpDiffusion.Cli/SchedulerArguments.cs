using System.Globalization;
using SharpDiffusion.Imaging;
using SharpDiffusion.Imaging.ControlPreprocessors;
using SharpDiffusion.Adapters;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Schedulers;

namespace SharpDiffusion.Cli;

/// <summary>generate's sampler options: --scheduler, --scheduler-option K=V, --eta.</summary>
internal static class SchedulerArguments
{
    public static readonly OptionSpec[] Options =
    [
        new("scheduler", OptionKind.Text, "sampler by diffusers class or AUTOMATIC1111 name, case-insensitive; 'list' prints them (default: the model's own scheduler)", "NAME"),
        new("scheduler-option", OptionKind.Texts, "override a scheduler_config.json key, e.g. timestep_spacing=trailing, use_karras_sigmas=true, prediction_type=v_prediction; sigmas=14.6,6.5,...,0 or timesteps=999,759,... for your own schedule (Euler, LMS, Heun, DPM2); repeatable (default: none)", "K=V"),
        new("eta", OptionKind.Number, "DDIM's eta (0 = deterministic) or TCD's gamma, 0..1 (default: the scheduler's, DDIM 0, TCD 0.3)", "X"),
    ];

    public static void Print()
    {
        Console.WriteLine("Schedulers (--scheduler NAME, case-insensitive):");
        foreach (var n in SchedulerFactory.Names.OrderBy(n => n.IsA1111))
            Console.WriteLine($"  {(n.IsA1111 ? $"\"{n.Name}\"" : n.Name),-24} {n.ClassName,-36} {(n.IsA1111 ? "AUTOMATIC1111 name" : n.Description)}");
        Console.WriteLine("The diffusers class names work too: " +
            string.Join(", ", SchedulerFactory.Names.Select(n => n.ClassName).Distinct().OrderBy(c => c)) + ".");
    }

    /// <summary>"key=value" pairs; values that read as a bool or a number become one, the rest stay strings.</summary>
    public static Dictionary<string, object?> ParseOptions(IReadOnlyList<string> pairs)
    {
        var result = new Dictionary<string, object?>();
        foreach (var pair in pairs)
        {
            int eq = pair.IndexOf('=');
            if (eq <= 0)
                throw new UsageException($"--scheduler-option expects KEY=VALUE, got '{pair}'.");
            string key = pair[..eq].Trim(), value = pair[(eq + 1)..].Trim();
            result[key] = value.ToLowerInvariant() switch
            {
                "true" => true,
                "false" => false,
                "null" or "none" => null,
                _ when double.TryParse(value, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double d) => d,
                _ when value.Contains(',') && NumberList(value) is { } list => list,   // sigmas=14.6,6.5,...
                _ => value,
            };
        }
        return result;
    }

    static double[]? NumberList(string value)
    {
        var parts = value.Split(',', StringSplitOptions.TrimEntries);
        var numbers = new double[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!double.TryParse(parts[i], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out numbers[i]))
                return null;
        return numbers;
    }
}
