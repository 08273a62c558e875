using static TorchSharp.torch;

namespace SharpDiffusion.Loading.SingleFile;

/// <summary>
/// A view of a checkpoint in which a stored tensor can also be asked for in parts, named <c>key#part</c>:
/// <c>#q</c>, <c>#k</c>, <c>#v</c> are the thirds of a fused projection (rows of <c>qkv.weight</c> [3d, d] = cat(q, k, v));
/// <c>#swap</c> is the tensor with its two row halves exchanged (the original MMDiT's adaLN gives (shift, scale),
/// diffusers' AdaLayerNormContinuous expects (scale, shift)). Only the parts in <paramref name="parts"/> are listed, and
/// a tensor asked for in parts no longer appears whole, so a name-to-name loader sees exactly what it maps.
/// The last whole tensor read is kept until another is asked for (each is read from the file once), and so is the last
/// whole compact one (<see cref="LoadCompact"/>: parts of a float8/GGUF/half fused tensor stay compact). Does not own the inner file.
/// </summary>
public sealed class TensorPartsFile : ITensorFile
{
    public const string Swap = "swap";
    static readonly string[] Thirds = ["q", "k", "v"];

    readonly ITensorFile _inner;
    readonly Dictionary<string, (string Whole, string Part)> _parts = new(StringComparer.Ordinal);
    (string Name, Tensor Value)? _cached;

    /// <param name="parts">the part names a key map asks for (<c>joint_blocks.0.x_block.attn.qkv.weight#q</c>); others are ignored.</param>
    public TensorPartsFile(ITensorFile inner, IEnumerable<string> parts)
    {
        _inner = inner;
        var byWhole = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (string name in parts)
        {
            int hash = name.LastIndexOf(LdmKeyMap.PartSeparator);
            if (hash < 0) continue;
            string whole = name[..hash], part = name[(hash + 1)..];
            if (part != Swap && !Thirds.Contains(part))
                throw new ArgumentException($"Unknown tensor part '{part}' in {name}: the parts are q, k, v (thirds) and swap (halves exchanged).");
            _parts[name] = (whole, part);
            (byWhole.TryGetValue(whole, out var list) ? list : byWhole[whole] = []).Add(name);
        }
        var headers = new List<TensorHeader>();
        foreach (var h in inner.Headers)
        {
            string key = LdmKeyMap.Normalize(h.Name);
            if (!byWhole.TryGetValue(key, out var names))
            {
                headers.Add(h);
                continue;
            }
            foreach (string name in names)
            {
                int divisor = _parts[name].Part == Swap ? 2 : 3;
                if (h.Shape.Length == 0 || h.Shape[0] % divisor != 0)
                    throw new InvalidDataException($"Checkpoint {inner.Path}: {h.Name} has shape [{string.Join(", ", h.Shape)}], whose first dimension does not split in {divisor}.");
                // The part keeps the stored key's spelling (a pickle's "state_dict." level) so the loader reads it back.
                string shown = h.Name[..^key.Length] + name;
                if (shown != name) _parts[shown] = _parts[name];
                headers.Add(new TensorHeader(shown, _parts[name].Part == Swap ? h.Shape : [h.Shape[0] / 3, .. h.Shape[1..]]) { StoredType = h.StoredType });
            }
        }
        Headers = headers;
    }

    public string Path => _inner.Path;
    public IReadOnlyList<TensorHeader> Headers { get; }
    public bool Contains(string name) => _parts.ContainsKey(name) || _inner.Contains(name);

    public void ReadInto(string name, Tensor destination)
    {
        if (!_parts.ContainsKey(name)) { _inner.ReadInto(name, destination); return; }
        using var part = Load(name);
        destination.copy_(part);
    }

    public Tensor Load(string name)
    {
        if (!_parts.TryGetValue(name, out var part))
            return _inner.Load(name);
        string stored = name[..name.LastIndexOf(LdmKeyMap.PartSeparator)];
        if (_cached?.Name != stored)
        {
            _cached?.Value.Dispose();
            // Kept across calls, so out of the caller's dispose scope (the loader disposes what it loads in one).
            _cached = (stored, _inner.Load(stored).DetachFromDisposeScope());
        }
        var whole = _cached.Value.Value;
        if (part.Part == Swap)
        {
            long half = whole.shape[0] / 2;   // (shift, scale) → (scale, shift)
            using var scale = whole.narrow(0, half, half);
            using var shift = whole.narrow(0, 0, half);
            return cat([scale, shift], 0);
        }
        long third = whole.shape[0] / 3;
        using var slice = whole.narrow(0, Array.IndexOf(Thirds, part.Part) * third, third);
        return slice.clone();
    }

    /// <summary>A part as rows of the stored compact weight (a third; the halves swapped), a whole tensor as the inner file
    /// keeps it: the inner file answers whether it is compact (float8, GGUF blocks, half floats under float32); null when
    /// it is not (loaded through <see cref="Load"/>).</summary>
    public CompactWeight? LoadCompact(string name, ScalarType? computeDType = null)
    {
        if (!_parts.TryGetValue(name, out var part))
            return _inner.LoadCompact(name, computeDType);
        string stored = name[..name.LastIndexOf(LdmKeyMap.PartSeparator)];
        if (_cachedCompact?.Name != stored)
        {
            _cachedCompact?.Value?.Dispose();
            _cachedCompact = null;
            _cachedCompact = (stored, _inner.LoadCompact(stored, computeDType));
        }
        if (_cachedCompact.Value.Value is not { } whole) return null;
        if (part.Part == Swap) return whole.HalvesSwapped();
        long third = whole.Shape[0] / 3;
        return whole.Rows(Array.IndexOf(Thirds, part.Part) * third, third);
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
