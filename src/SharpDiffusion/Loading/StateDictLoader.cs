using System.Text;
using static TorchSharp.torch;

namespace SharpDiffusion.Loading;

/// <summary>
/// Fills a module's parameters and buffers from safetensors files by name. Every stored tensor must land in a
/// parameter of the same name and shape and every parameter must be filled; otherwise the error lists the
/// differences by name. Values are converted to the parameter's dtype and device as they are copied.
/// </summary>
public static class StateDictLoader
{
    /// <param name="rename">maps a stored key to our name (older layouts); null = identity.</param>
    /// <param name="ignore">stored keys that are known and safely skipped (e.g. position_ids).</param>
    public static void Load(nn.Module module, IReadOnlyList<SafetensorsFile> files, Func<string, string>? rename = null,
        Func<string, bool>? ignore = null)
    {
        var targets = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, p) in module.named_parameters()) targets[name] = p;
        foreach (var (name, b) in module.named_buffers()) targets[name] = b;

        var filled = new HashSet<string>(StringComparer.Ordinal);
        var unexpected = new List<string>();
        var mismatched = new List<string>();
        string where = string.Join(", ", files.Select(f => f.Path));

        using (no_grad())
        {
            foreach (var file in files)
            foreach (var entry in file.Tensors.Values)
            {
                if (ignore?.Invoke(entry.Name) == true) continue;
                string name = rename?.Invoke(entry.Name) ?? entry.Name;
                if (!targets.TryGetValue(name, out var target))
                {
                    unexpected.Add(entry.Name);
                    continue;
                }
                using var stored = file.Load(entry.Name);
                var source = stored;
                // Very old VAE checkpoints store attention projections as 1×1 convs.
                if (stored.dim() == 4 && target.dim() == 2 && stored.shape[2] == 1 && stored.shape[3] == 1)
                    source = stored.squeeze(-1).squeeze(-1);
                if (!source.shape.SequenceEqual(target.shape))
                {
                    mismatched.Add($"{entry.Name}: stored [{string.Join(", ", source.shape)}], model [{string.Join(", ", target.shape)}]");
                    continue;
                }
                target.copy_(source);
                filled.Add(name);
                if (!ReferenceEquals(source, stored)) source.Dispose();
            }
        }

        var missing = targets.Keys.Where(k => !filled.Contains(k)).ToList();
        if (unexpected.Count == 0 && mismatched.Count == 0 && missing.Count == 0)
            return;

        var report = new StringBuilder($"Weights in {where} do not match the {module.GetName()} built from its config.json:");
        Append(report, "shape differs", mismatched);
        Append(report, "missing from the file", missing);
        Append(report, "in the file but not in the model", unexpected);
        report.Append("\nCheck that config.json belongs to these weights (a mismatched or truncated download?).");
        throw new InvalidDataException(report.ToString());
    }

    static void Append(StringBuilder report, string title, List<string> names)
    {
        if (names.Count == 0) return;
        report.Append($"\n  {title} ({names.Count}): ");
        report.Append(string.Join(", ", names.Take(12)));
        if (names.Count > 12) report.Append($", … ({names.Count - 12} more)");
    }
}
