using static TorchSharp.torch;

namespace SharpDiffusion.Loading.SingleFile;

/// <summary>
/// A BFL-layout Flux transformer file (safetensors, float8 too, or GGUF) seen with diffusers' names (<see cref="BflKeyMap"/>):
/// each fused tensor appears as its parts, the final modulation with its halves swapped, everything else renamed. The
/// last fused tensor read is kept until another is asked for, so each is read from the file once. A ComfyUI scaled float8
/// file's weights are multiplied by their scale_weight (a float8 weight without one is refused). Stored names no rule
/// knows keep their own name (the loader then reports them). Does not own the inner file.
/// </summary>
public sealed class BflTransformerFile : ITensorFile
{
    readonly ITensorFile _inner;
    readonly Dictionary<string, (string Stored, int Part, long Rows, BflKeyMap.BflSplit Split)> _sources = new(StringComparer.Ordinal);
    readonly long _width;
    const string ScaledMarker = "scaled_fp8";
    readonly Dictionary<string, string> _scales = new(StringComparer.Ordinal); // BFL weight name → its stored scale_weight
    (string Name, Tensor Value)? _cached;

    /// <param name="width">the transformer width D (the parts of a fused tensor are D rows each, the last the rest).</param>
    public BflTransformerFile(ITensorFile inner, int doubleBlocks, int singleBlocks, long width)
    {
        (_inner, _width) = (inner, width);
        var stored = inner.Headers.ToDictionary(h => BflKeyMap.Strip(h.Name), StringComparer.Ordinal);
        var headers = new List<TensorHeader>();
        var mapped = new HashSet<string>(StringComparer.Ordinal);
        // ComfyUI's scaled float8 files: a scaled_fp8 marker, and X.scale_weight beside each float8 X.weight (W = W₈·scale).
        bool scaled = stored.ContainsKey(ScaledMarker);
        foreach (var (name, header) in stored.Where(kv => kv.Key is ScaledMarker || kv.Key.EndsWith(".scale_weight", StringComparison.Ordinal) || kv.Key.EndsWith(".scale_input", StringComparison.Ordinal)))
        {
            mapped.Add(name);
            if (name.EndsWith(".scale_weight", StringComparison.Ordinal)) _scales[name[..^".scale_weight".Length] + ".weight"] = header.Name;
        }
        foreach (var (bfl, diffusers, split) in BflKeyMap.Expand(doubleBlocks, singleBlocks))
        {
            if (!stored.TryGetValue(bfl, out var header)) continue; // absent (guidance_in of schnell): the loader names what the model misses
            mapped.Add(bfl);
            if (scaled && bfl.EndsWith(".weight", StringComparison.Ordinal) && header.StoredType?.StartsWith("F8", StringComparison.Ordinal) == true && !_scales.ContainsKey(bfl))
                throw new InvalidDataException($"{inner.Path}: '{header.Name}' is float8 in a scaled float8 file (scaled_fp8) but its scale " +
                    $"'{bfl[..^".weight".Length]}.scale_weight' is missing: the file is incomplete; download it again.");
            for (int part = 0; part < diffusers.Length; part++)
            {
                long[] shape = header.Shape;
                if (split == BflKeyMap.BflSplit.Parts)
                {
                    long rows = part < diffusers.Length - 1 ? width : header.Shape[0] - width * (diffusers.Length - 1);
                    if (rows <= 0)
                        throw new InvalidDataException($"{inner.Path}: '{header.Name}' has {header.Shape[0]} rows, too few for {diffusers.Length} parts of {width}; the file is damaged.");
                    shape = [rows, .. header.Shape[1..]];
                }
                _sources[diffusers[part]] = (header.Name, part, shape.Length > 0 ? shape[0] : 0, split);
                headers.Add(new TensorHeader(diffusers[part], shape) { StoredType = header.StoredType });
            }
        }
        headers.AddRange(inner.Headers.Where(h => !mapped.Contains(BflKeyMap.Strip(h.Name))));
        Headers = headers;
    }

    public string Path => _inner.Path;
    public IReadOnlyList<TensorHeader> Headers { get; }
    public bool Contains(string name) => _sources.ContainsKey(name) || _inner.Contains(name);

    /// <summary>A stored tensor, times its scale_weight in a scaled float8 file.</summary>
    Tensor Stored(string stored)
    {
        var value = _inner.Load(stored);
        if (!_scales.TryGetValue(BflKeyMap.Strip(stored), out var scaleName)) return value;
        using var scale = _inner.Load(scaleName);
        return value.mul_(scale.to(value.dtype));
    }

    public Tensor Load(string name)
    {
        if (!_sources.TryGetValue(name, out var source))
            return _inner.Load(name);
        switch (source.Split)
        {
            case BflKeyMap.BflSplit.Parts:
                if (_cached?.Name != source.Stored)
                {
                    _cached?.Value.Dispose();
                    // Kept across calls, so out of the caller's dispose scope (the loader disposes what it loads in one).
                    _cached = (source.Stored, Stored(source.Stored).DetachFromDisposeScope());
                }
                var fused = _cached.Value.Value;
                using (var slice = fused.narrow(0, source.Part * _width, source.Rows)) return slice.clone();
            case BflKeyMap.BflSplit.SwapHalves:
                using (var stored = Stored(source.Stored))
                {
                    var halves = stored.chunk(2, 0); // [shift | scale]
                    var swapped = cat([halves[1], halves[0]], 0);
                    foreach (var h in halves) h.Dispose();
                    return swapped;
                }
            default:
                return Stored(source.Stored);
        }
    }

    /// <summary>A fused tensor's part as rows of the stored compact weight (float8, GGUF blocks); the swapped final
    /// modulation and plain-float tensors are not compact (null: loaded through <see cref="Load"/>).</summary>
    public CompactWeight? LoadCompact(string name)
    {
        // A scaled float8 weight (W = W₈·scale) is decoded at load with its scale: a compact weight holds no scale.
        if (!_sources.TryGetValue(name, out var source))
            return _scales.ContainsKey(BflKeyMap.Strip(name)) ? null : _inner.LoadCompact(name);
        if (_scales.ContainsKey(BflKeyMap.Strip(source.Stored)))
            return null;
        switch (source.Split)
        {
            case BflKeyMap.BflSplit.Parts:
                if (_cachedCompact?.Name != source.Stored)
                {
                    _cachedCompact?.Value?.Dispose();
                    _cachedCompact = (source.Stored, _inner.LoadCompact(source.Stored));
                }
                return _cachedCompact.Value.Value?.Rows(source.Part * _width, source.Rows);
            case BflKeyMap.BflSplit.SwapHalves:
                return null;
            default:
                return _inner.LoadCompact(source.Stored);
        }
    }

    (string Name, CompactWeight? Value)? _cachedCompact;

    public void Dispose()
    {
        _cached?.Value.Dispose();
        _cached = null;
        _cachedCompact?.Value?.Dispose();
        _cachedCompact = null;
    }
}
