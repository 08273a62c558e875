using static TorchSharp.torch;

namespace SharpDiffusion.Loading.SingleFile;

/// <summary>
/// A view of a checkpoint in which each fused OpenCLIP attention projection (<c>…attn.in_proj_weight</c> [3d, d] and
/// <c>…attn.in_proj_bias</c> [3d], = cat(q, k, v) along rows) appears as three tensors <c>…#q</c>, <c>…#k</c>, <c>…#v</c>
/// of a third each, so the name-to-name loader can fill q_proj, k_proj and v_proj from it. Other tensors pass through.
/// The last fused tensor read is kept until another is asked for, so each is read from the file once.
/// Does not own the inner file.
/// </summary>
public sealed class FusedQkvSplitFile : ITensorFile
{
    static readonly string[] Parts = ["q", "k", "v"];
    readonly ITensorFile _inner;
    readonly Dictionary<string, (string Fused, int Part)> _parts = new(StringComparer.Ordinal);
    (string Name, Tensor Value)? _cached;

    public FusedQkvSplitFile(ITensorFile inner)
    {
        _inner = inner;
        var headers = new List<TensorHeader>();
        foreach (var h in inner.Headers)
        {
            bool fused = (h.Name.EndsWith(".in_proj_weight", StringComparison.Ordinal) || h.Name.EndsWith(".in_proj_bias", StringComparison.Ordinal))
                         && h.Shape.Length >= 1 && h.Shape[0] % 3 == 0;
            if (!fused)
            {
                headers.Add(h);
                continue;
            }
            for (int p = 0; p < 3; p++)
            {
                string name = $"{h.Name}{LdmKeyMap.PartSeparator}{Parts[p]}";
                _parts[name] = (h.Name, p);
                headers.Add(new TensorHeader(name, [h.Shape[0] / 3, .. h.Shape[1..]]));
            }
        }
        Headers = headers;
    }

    public string Path => _inner.Path;
    public IReadOnlyList<TensorHeader> Headers { get; }
    public bool Contains(string name) => _parts.ContainsKey(name) || _inner.Contains(name);

    public Tensor Load(string name)
    {
        if (!_parts.TryGetValue(name, out var part))
            return _inner.Load(name);
        if (_cached?.Name != part.Fused)
        {
            _cached?.Value.Dispose();
            // Kept across calls, so out of the caller's dispose scope (the loader disposes what it loads in one).
            _cached = (part.Fused, _inner.Load(part.Fused).DetachFromDisposeScope());
        }
        var fused = _cached.Value.Value;
        long third = fused.shape[0] / 3;
        using var slice = fused.narrow(0, part.Part * third, third);
        return slice.clone();
    }

    public void Dispose()
    {
        _cached?.Value.Dispose();
        _cached = null;
    }
}
