using static TorchSharp.torch;

namespace SharpDiffusion.Loading.SingleFile;

/// <summary>
/// A view of a checkpoint in which each 2-D tensor named in the constructor also appears transposed as
/// <c>name#T</c> (OpenCLIP stores text_projection as P [width, proj], y = x·P; transformers' Linear holds Pᵀ). Other
/// tensors pass through. Does not own the inner file.
/// </summary>
public sealed class TransposedFile : ITensorFile
{
    readonly ITensorFile _inner;
    readonly HashSet<string> _transposed = new(StringComparer.Ordinal);

    public TransposedFile(ITensorFile inner, Func<string, bool> transpose)
    {
        _inner = inner;
        var headers = new List<TensorHeader>();
        foreach (var h in inner.Headers)
        {
            if (transpose(h.Name) && h.Shape.Length == 2)
            {
                string name = h.Name + LdmKeyMap.TransposedSuffix;
                _transposed.Add(name);
                headers.Add(new TensorHeader(name, [h.Shape[1], h.Shape[0]]));
            }
            else
                headers.Add(h);
        }
        Headers = headers;
    }

    public string Path => _inner.Path;
    public IReadOnlyList<TensorHeader> Headers { get; }
    public bool Contains(string name) => _transposed.Contains(name) || _inner.Contains(name);

    public Tensor Load(string name)
    {
        if (!_transposed.Contains(name))
            return _inner.Load(name);
        using var stored = _inner.Load(name[..^LdmKeyMap.TransposedSuffix.Length]);
        return stored.t().contiguous();
    }

    public void Dispose() { }
}
