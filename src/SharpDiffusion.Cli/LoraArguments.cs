using System.Globalization;
using SharpDiffusion.Imaging;
using SharpDiffusion.Imaging.ControlPreprocessors;
using SharpDiffusion.Adapters;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Schedulers;

namespace SharpDiffusion.Cli;

/// <summary>generate's --lora FILE[:SCALE] (and the FILE[:SUFFIX] rule --embedding shares).</summary>
internal static class LoraArguments
{
    /// <summary>"FILE" or "FILE:SCALE": the suffix counts only when FILE alone is not an existing file (paths may hold ':').</summary>
    public static LoraWeight Parse(string value)
    {
        var (file, scale) = SplitSuffix(value, "--lora", s => double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) && double.IsFinite(d)
            ? (double?)d : throw new UsageException($"--lora {value}: '{s}' is not a number (FILE:SCALE)."));
        return new LoraWeight(LoraFile.Load(file), scale ?? 1.0);
    }

    public static (string File, T? Suffix) SplitSuffix<T>(string value, string option, Func<string, T> parse)
    {
        if (File.Exists(value))
            return (value, default);
        int colon = value.LastIndexOf(':');
        string file = colon > 0 ? value[..colon] : value;
        if (!File.Exists(file))
            throw new UsageException($"{option}: the file {AtomicFiles.Printable(file)} does not exist.");
        return (file, parse(value[(colon + 1)..]));
    }

    public sealed class Disposal(IEnumerable<LoraFile> files) : IDisposable
    {
        public void Dispose() { foreach (var f in files) f.Dispose(); }
    }
}
