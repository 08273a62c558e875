using static TorchSharp.torch;

namespace SharpDiffusion.Loading.SingleFile;

/// <summary>A view of a checkpoint with one tensor added that the file leaves out because its value is known (SD3's CLIP-L
/// text_projection, the identity). Does not own the inner file.</summary>
public sealed class ExtraTensorsFile(ITensorFile inner, string name, long[] shape, Func<Tensor> value) : ITensorFile
{
    public string Path => inner.Path;
    public IReadOnlyList<TensorHeader> Headers { get; } = [.. inner.Headers, new TensorHeader(name, shape)];
    public bool Contains(string key) => key == name || inner.Contains(key);
    public Tensor Load(string key) => key == name ? value() : inner.Load(key);
    public bool ReadsInParallel => inner.ReadsInParallel;

    public void ReadInto(string key, Tensor destination)
    {
        if (key != name) { inner.ReadInto(key, destination); return; }
        using var stored = value();
        destination.copy_(stored);
    }

    public void Dispose() { }
}
