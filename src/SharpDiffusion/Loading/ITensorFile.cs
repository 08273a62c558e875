using static TorchSharp.torch;

namespace SharpDiffusion.Loading;

/// <summary>A stored tensor's name and shape, known before its data is read.</summary>
public sealed record TensorHeader(string Name, long[] Shape)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// A file of named tensors, whatever its format (safetensors; torch pickles: .ckpt, .pt, .bin): the names and shapes
/// up front, each tensor read on its own when asked for, so loading streams tensor by tensor.
/// </summary>
public interface ITensorFile : IDisposable
{
    string Path { get; }

    /// <summary>Every tensor's header, in file order.</summary>
    IReadOnlyList<TensorHeader> Headers { get; }

    bool Contains(string name);

    /// <summary>A new CPU tensor in the stored dtype.</summary>
    Tensor Load(string name);

    /// <summary>Whether <see cref="ReadInto"/> may run on several threads at once.</summary>
    bool ReadsInParallel => false;

    /// <summary>The tensor's values into <paramref name="destination"/> (as many elements; its own shape, dtype, device and
    /// strides: converted as they are copied).</summary>
    void ReadInto(string name, Tensor destination)
    {
        using var stored = Load(name);
        using var shaped = stored.reshape(destination.shape);
        destination.copy_(shaped);
    }
}
