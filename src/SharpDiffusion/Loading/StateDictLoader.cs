using System.Text;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SharpDiffusion.Loading;

/// <summary>How stored weights become parameters: compute dtype, device and convolution layout.</summary>
public sealed record WeightPlacement(ScalarType DType, Device Device, bool ChannelsLastConvs)
{
    /// <summary>Weights of compact-capable <see cref="Models.Linear"/> layers (<see cref="Models.Linear.CompactCapable"/>) that
    /// the file stores compactly (float8, GGUF quantized; float16/bfloat16 under a float32 compute dtype) stay compact in
    /// memory and are decoded per call (<see cref="LoadOptions.CompactWeights"/>); CPU only.</summary>
    public bool CompactWeights { get; init; } = true;

    public static WeightPlacement Cpu32 { get; } = new(ScalarType.Float32, new Device("cpu"), ChannelsLastConvs: false);
}

/// <summary>
/// Fills a module's parameters from tensor files (safetensors, torch pickles) by name. Every stored tensor must land in a parameter of
/// the same name and shape and every parameter must be filled; otherwise the error lists the differences by name.
/// Each stored tensor becomes a new parameter in the placement's dtype, device and layout, one tensor at a time,
/// so a model built on the meta device never holds more than its final weights plus one tensor in flight.
/// </summary>
public static class StateDictLoader
{
    /// <param name="rename">maps a stored key to our name (older layouts); null = identity.</param>
    /// <param name="ignore">stored keys that are known and safely skipped (e.g. position_ids).</param>
    public static void Load(nn.Module module, IReadOnlyList<ITensorFile> files, WeightPlacement? placement = null,
        Func<string, string>? rename = null, Func<string, bool>? ignore = null)
    {
        placement ??= WeightPlacement.Cpu32;
        var targets = module.named_parameters().ToDictionary(p => p.name, p => p.parameter, StringComparer.Ordinal);

        var filled = new HashSet<string>(StringComparer.Ordinal);
        var unexpected = new List<string>();
        var mismatched = new List<string>();
        var plan = new List<(ITensorFile File, string Key, string Name, long[] Shape)>();
        string where = string.Join(", ", files.Select(f => f.Path));

        // Names and shapes first, from the headers: a file that does not fit is reported before any data is read.
        foreach (var file in files)
        foreach (var entry in file.Headers)
        {
            if (ignore?.Invoke(entry.Name) == true) continue;
            string name = rename?.Invoke(entry.Name) ?? entry.Name;
            if (!targets.TryGetValue(name, out var target))
            {
                unexpected.Add(entry.Name);
                continue;
            }
            long[] shape = entry.Shape;
            // Very old VAE checkpoints store attention projections as 1×1 convs ([C, C, 1, 1]), and diffusers'
            // convert_diffusers_to_original_stable_diffusion.py writes their biases as [C, 1, 1]: trailing 1s dropped.
            bool squeeze = shape.Length > target.dim() && target.dim() >= 1 && shape[(int)target.dim()..].All(d => d == 1);
            if (squeeze) shape = shape[..(int)target.dim()];
            if (!shape.SequenceEqual(target.shape))
            {
                mismatched.Add($"{entry.Name}: stored [{string.Join(", ", entry.Shape)}], model [{string.Join(", ", target.shape)}]");
                continue;
            }
            plan.Add((file, entry.Name, name, shape));
            filled.Add(name);
        }

        var missing = targets.Keys.Where(k => !filled.Contains(k)).ToList();
        if (unexpected.Count > 0 || mismatched.Count > 0 || missing.Count > 0)
        {
            var report = new StringBuilder($"Weights in {where} do not match the {module.GetName()} built from its config.json:");
            Append(report, "shape differs", mismatched);
            Append(report, "missing from the file", missing);
            Append(report, "in the file but not in the model", unexpected);
            report.Append("\nCheck that config.json belongs to these weights (a mismatched or truncated download?).");
            throw new InvalidDataException(report.ToString());
        }

        // Then the data, on several threads when the files allow it: most of a load is the kernel handing out the new
        // pages the weights fill, and that scales with threads. A compact-capable layer's weight that the file stores
        // compactly for the compute dtype stays as stored (CompactWeight: the file answers which, StateDictLoader does
        // not look at formats); everything else becomes a parameter in the compute dtype.
        var compactable = CompactWeightNames(module, placement);
        var placed = new Parameter?[plan.Count];
        var compact = new CompactWeight?[plan.Count];
        try
        {
            int threads = files.All(f => f.ReadsInParallel) ? Math.Clamp(Environment.ProcessorCount, 1, 4) : 1;
            Parallel.For(0, plan.Count, new ParallelOptions { MaxDegreeOfParallelism = threads }, i =>
            {
                using var noGrad = no_grad();
                if (compactable.Contains(plan[i].Name) && plan[i].File.LoadCompact(plan[i].Key, placement.DType) is { } stored)
                    compact[i] = stored;
                else
                    placed[i] = Place(plan[i].File, plan[i].Key, plan[i].Shape, placement);
            });
        }
        catch (AggregateException e)
        {
            foreach (var p in placed) p?.Dispose();
            foreach (var c in compact) c?.Dispose();
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e.InnerExceptions[0]); // the file's own one-line error
        }
        Assign(module, plan.Select((entry, i) => (entry.Name, Parameter: placed[i])).Where(p => p.Parameter is not null).Select(p => (p.Name, p.Parameter!)));
        AssignCompact(module, plan.Select((entry, i) => (entry.Name, Weight: compact[i])).Where(c => c.Weight is not null).Select(c => (c.Name, c.Weight!)), placement.DType);
    }

    /// <summary>The weight names of the module's compact-capable <see cref="Models.Linear"/> layers, when the placement keeps weights compact.</summary>
    static HashSet<string> CompactWeightNames(nn.Module module, WeightPlacement placement)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        if (!placement.CompactWeights || placement.Device.type != TorchSharp.DeviceType.CPU) return names;
        foreach (var (name, m) in module.named_modules())
            if (m is Models.Linear { CompactCapable: true })
                names.Add(name.Length == 0 ? "weight" : name + ".weight");
        return names;
    }

    /// <summary>Each compact weight into its <see cref="Models.Linear"/>, whose placeholder takes <paramref name="dtype"/>.</summary>
    static void AssignCompact(nn.Module module, IEnumerable<(string Name, CompactWeight Weight)> weights, ScalarType dtype)
    {
        var owners = module.named_modules().GroupBy(m => m.name).ToDictionary(g => g.Key, g => g.First().module, StringComparer.Ordinal);
        owners[""] = module;
        using var noGrad = no_grad();
        var scratch = new Models.DequantizeScratch(); // one buffer per model: its layers run one at a time
        foreach (var (name, weight) in weights)
        {
            var layer = (Models.Linear)owners[name[..Math.Max(0, name.LastIndexOf('.'))]];
            layer.UseCompact(weight, dtype);
            layer.ShareScratch(scratch);
        }
    }

    /// <summary>Each parameter into <paramref name="module"/>'s parameter of that dotted name, through its layer's setter.</summary>
    internal static void Assign(nn.Module module, IEnumerable<(string Name, Parameter Parameter)> parameters)
    {
        var owners = module.named_modules().GroupBy(m => m.name).ToDictionary(g => g.Key, g => g.First().module, StringComparer.Ordinal);
        owners[""] = module;
        using var noGrad = no_grad();
        foreach (var (name, parameter) in parameters)
        {
            int dot = name.LastIndexOf('.');
            Assign(owners[dot < 0 ? "" : name[..dot]], name[(dot + 1)..], parameter, name);
        }
    }

    // The stored tensor as the parameter it becomes: new memory of the final shape, dtype, device and layout (conv
    // kernels channels-last when asked), filled from the file in one pass (ITensorFile.ReadInto converts as it copies).
    static Parameter Place(ITensorFile file, string key, long[] shape, WeightPlacement placement)
    {
        var placed = placement.ChannelsLastConvs && shape.Length == 4
            ? Models.MemoryLayout.EmptyChannelsLast(shape, placement.DType, placement.Device)
            : empty(shape, placement.DType, placement.Device);
        try
        {
            file.ReadInto(key, placed);
        }
        catch
        {
            placed.Dispose();
            throw;
        }
        var parameter = new Parameter(placed, requires_grad: false);
        placed.Dispose(); // the parameter holds its own reference to the storage
        return parameter;
    }

    // TorchSharp layers keep their parameters in fields behind typed setters: assign through them.
    static void Assign(nn.Module owner, string leaf, Parameter p, string name)
    {
        switch (owner, leaf)
        {
            case (Linear l, "weight"): l.weight = p; break;
            case (Linear l, "bias"): l.bias = p; break;
            case (Conv2d c, "weight"): c.weight = p; break;
            case (Conv2d c, "bias"): c.bias = p; break;
            case (GroupNorm g, "weight"): g.weight = p; break;
            case (GroupNorm g, "bias"): g.bias = p; break;
            case (LayerNorm n, "weight"): n.weight = p; break;
            case (LayerNorm n, "bias"): n.bias = p; break;
            case (Embedding e, "weight"): e.weight = p; break;
            case (Models.Transformers.IParameterOwner o, _): o.SetParameter(leaf, p); break;
            default: throw new NotSupportedException($"Cannot load parameter '{name}' into a {owner.GetType().Name}");
        }
    }

    static void Append(StringBuilder report, string title, List<string> names)
    {
        if (names.Count == 0) return;
        report.Append($"\n  {title} ({names.Count}): ");
        report.Append(string.Join(", ", names.Take(12)));
        if (names.Count > 12) report.Append($", … ({names.Count - 12} more)");
    }
}
