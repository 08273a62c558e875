using System.Collections.Concurrent;
using static TorchSharp.torch;

namespace SharpDiffusion.Loading;

/// <summary>
/// ComfyUI's scaled float8 safetensors (flux1-dev-fp8 scaled files, <c>t5xxl_fp8_e4m3fn_scaled.safetensors</c>,
/// sd3.5_large_fp8_scaled): a <c>scaled_fp8</c> marker tensor and, beside each float8 <c>X.weight</c>, a per-tensor
/// <c>X.scale_weight</c>: W = W₈·scale (<c>X.scale_input</c>, for float8 matmuls, is not needed to read the weights).
/// Seen through this view the file holds the weights themselves: the marker and the scales are not listed; a scaled
/// tensor loads as float32(W₈) · float32(scale), then rounds to the destination's dtype; kept compact it is the stored
/// codes with the scale attached (<see cref="CompactWeight.WithScale"/>), which decode to the same values bit for bit.
/// In a marked file a float8 weight without its scale is refused in one line. Owns the inner file.
/// </summary>
public sealed class ScaledFloat8File : ITensorFile
{
    public const string Marker = "scaled_fp8";
    const string ScaleWeight = ".scale_weight", ScaleInput = ".scale_input", Weight = ".weight";

    readonly ITensorFile _inner;
    readonly Dictionary<string, string> _scaleOf = new(StringComparer.Ordinal); // stored weight name → its scale_weight's
    readonly ConcurrentDictionary<string, float> _scales = new(StringComparer.Ordinal); // read at first use (loads run in parallel)

    ScaledFloat8File(ITensorFile inner)
    {
        _inner = inner;
        var names = inner.Headers.Select(h => h.Name).ToHashSet(StringComparer.Ordinal);
        foreach (string name in names.Where(n => n.EndsWith(ScaleWeight, StringComparison.Ordinal)))
            if (names.Contains(name[..^ScaleWeight.Length] + Weight))
                _scaleOf[name[..^ScaleWeight.Length] + Weight] = name;
        bool marked = names.Any(IsMarker);
        foreach (var h in inner.Headers)
            if (marked && h.StoredType?.StartsWith("F8_", StringComparison.Ordinal) == true && h.Name.EndsWith(Weight, StringComparison.Ordinal) && !_scaleOf.ContainsKey(h.Name))
                throw new InvalidDataException($"{inner.Path}: '{h.Name}' is float8 in a scaled float8 file ({Marker}) but its scale " +
                    $"'{h.Name[..^Weight.Length]}{ScaleWeight}' is missing: the file is incomplete; download it again.");
        Headers = inner.Headers.Where(h => !IsHidden(h.Name)).ToList();
    }

    /// <summary><paramref name="file"/> seen with its scales applied when it is a scaled float8 file (a <c>scaled_fp8</c>
    /// marker or any <c>*.scale_weight</c>), else <paramref name="file"/> itself. Takes the file (disposed if refused).</summary>
    public static ITensorFile Wrap(ITensorFile file)
    {
        if (!file.Headers.Any(h => IsMarker(h.Name) || h.Name.EndsWith(ScaleWeight, StringComparison.Ordinal)))
            return file;
        try
        {
            return new ScaledFloat8File(file);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    static bool IsMarker(string name) => name == Marker || name.EndsWith("." + Marker, StringComparison.Ordinal);

    static bool IsHidden(string name) =>
        IsMarker(name) || name.EndsWith(ScaleWeight, StringComparison.Ordinal) || name.EndsWith(ScaleInput, StringComparison.Ordinal);

    public string Path => _inner.Path;
    public IReadOnlyList<TensorHeader> Headers { get; }
    public bool Contains(string name) => !IsHidden(name) && _inner.Contains(name);
    public bool ReadsInParallel => _inner.ReadsInParallel;

    /// <summary>The scale of a stored weight, one value (any float dtype, as float32).</summary>
    float ScaleOf(string weight) => _scales.GetOrAdd(weight, w =>
    {
        string name = _scaleOf[w];
        using var stored = _inner.Load(name);
        if (stored.numel() != 1)
            throw new InvalidDataException($"{Path}: '{name}' holds {stored.numel()} values; a scaled float8 file's scale_weight is one value per tensor.");
        using var value = stored.to(ScalarType.Float32);
        return value.item<float>();
    });

    /// <summary>A stored tensor; a scaled one as float32(stored) · scale.</summary>
    public Tensor Load(string name)
    {
        var stored = _inner.Load(name);
        if (!_scaleOf.ContainsKey(name)) return stored;
        var values = stored;
        try
        {
            if (stored.dtype != ScalarType.Float32)
            {
                values = stored.to(ScalarType.Float32);
                stored.Dispose();
            }
            using var scale = tensor(ScaleOf(name), ScalarType.Float32);
            return values.mul_(scale);
        }
        catch
        {
            values.Dispose();
            throw;
        }
    }

    public void ReadInto(string name, Tensor destination)
    {
        if (!_scaleOf.ContainsKey(name)) { _inner.ReadInto(name, destination); return; }
        using var values = Load(name);
        using var shaped = values.view(destination.shape);
        destination.copy_(shaped); // rounds float32(W₈)·scale to the destination's dtype, as CompactWeight.Dequantize does
    }

    public Tensor LoadRaw(string name) => _inner.LoadRaw(name);

    /// <summary>The inner file's compact weight, with its scale attached when it has one.</summary>
    public CompactWeight? LoadCompact(string name, ScalarType? computeDType = null)
    {
        var compact = _inner.LoadCompact(name, computeDType);
        if (compact is null || !_scaleOf.ContainsKey(name)) return compact;
        try
        {
            return compact.WithScale(ScaleOf(name));
        }
        catch
        {
            compact.Dispose();
            throw;
        }
    }

    public void Dispose() => _inner.Dispose();
}
