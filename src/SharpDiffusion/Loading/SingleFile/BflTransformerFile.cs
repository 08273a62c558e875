using static TorchSharp.torch;

namespace SharpDiffusion.Loading.SingleFile;

/// <summary>
/// A BFL-layout Flux transformer file (safetensors, float8 too, or GGUF) seen with diffusers' names (<see cref="BflKeyMap"/>):
/// each fused tensor appears as its parts, the final modulation with its halves swapped, everything else renamed. The
/// last fused tensor read is kept until another is asked for, so each is read from the file once. A ComfyUI scaled float8
/// file comes with its scales already applied (<see cref="TensorFiles.Open"/> sees it through <see cref="ScaledFloat8File"/>),
/// fused tensors scaled before their split. Stored names no rule knows keep their own name (the loader then reports
/// them). Does not own the inner file.
/// </summary>
public sealed class BflTransformerFile : ITensorFile
{
    readonly ITensorFile _inner;
    readonly Dictionary<string, (string Stored, int Part, long Rows, BflKeyMap.BflSplit Split)> _sources = new(StringComparer.Ordinal);
    readonly long _width;
    (string Name, Tensor Value)? _cached;

    /// <param name="width">the transformer width D (the parts of a fused tensor are D rows each, the last the rest).</param>
    public BflTransformerFile(ITensorFile inner, int doubleBlocks, int singleBlocks, long width)
    {
        (_inner, _width) = (inner, width);
        var stored = inner.Headers.ToDictionary(h => BflKeyMap.Strip(h.Name), StringComparer.Ordinal);
        var headers = new List<TensorHeader>();
        var mapped = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (bfl, diffusers, split) in BflKeyMap.Expand(doubleBlocks, singleBlocks))
        {
            if (!stored.TryGetValue(bfl, out var header)) continue; // absent (guidance_in of schnell): the loader names what the model misses
            mapped.Add(bfl);
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
                    _cached = (source.Stored, _inner.Load(source.Stored).DetachFromDisposeScope());
                }
                var fused = _cached.Value.Value;
                using (var slice = fused.narrow(0, source.Part * _width, source.Rows)) return slice.clone();
            case BflKeyMap.BflSplit.SwapHalves:
                using (var stored = _inner.Load(source.Stored))
                {
                    var halves = stored.chunk(2, 0); // [shift | scale]
                    var swapped = cat([halves[1], halves[0]], 0);
                    foreach (var h in halves) h.Dispose();
                    return swapped;
                }
            default:
                return _inner.Load(source.Stored);
        }
    }

    /// <summary>A fused tensor's part as rows of the stored compact weight (float8, GGUF blocks, half floats under float32;
    /// a scaled float8 weight's scale comes along), the final modulation with its halves swapped; null for tensors the
    /// file does not store compactly (loaded through <see cref="Load"/>).</summary>
    public CompactWeight? LoadCompact(string name, ScalarType? computeDType = null)
    {
        if (!_sources.TryGetValue(name, out var source))
            return _inner.LoadCompact(name, computeDType);
        switch (source.Split)
        {
            case BflKeyMap.BflSplit.Parts:
                if (_cachedCompact?.Name != source.Stored)
                {
                    _cachedCompact?.Value?.Dispose();
                    _cachedCompact = (source.Stored, _inner.LoadCompact(source.Stored, computeDType));
                }
                return _cachedCompact.Value.Value?.Rows(source.Part * _width, source.Rows);
            case BflKeyMap.BflSplit.SwapHalves:
                using (var stored = _inner.LoadCompact(source.Stored, computeDType)) return stored?.HalvesSwapped();
            default:
                return _inner.LoadCompact(source.Stored, computeDType);
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
