using static TorchSharp.torch;

namespace SharpDiffusion.Loading;

/// <summary>A stored tensor's name and shape, known before its data is read.</summary>
public sealed record TensorHeader(string Name, long[] Shape)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);

    /// <summary>How the values are stored, in the file format's own words (safetensors "F16", "F8_E4M3"; GGUF "Q8_0",
    /// "Q4_K"); null where the format does not say it up front (torch pickles).</summary>
    public string? StoredType { get; init; }
}

/// <summary>
/// A file of named tensors, whatever its format (safetensors, float8 ones too; GGUF; torch pickles: .ckpt, .pt, .bin;
/// a sharded set behind its .index.json): the names and shapes
/// up front, each tensor read on its own when asked for, so loading streams tensor by tensor.
/// </summary>
public interface ITensorFile : IDisposable
{
    string Path { get; }

    /// <summary>Every tensor's header, in file order.</summary>
    IReadOnlyList<TensorHeader> Headers { get; }

    bool Contains(string name);

    /// <summary>A new CPU tensor in the stored dtype; float8 and GGUF-quantized values decoded to float32.</summary>
    Tensor Load(string name);

    /// <summary>The stored bytes as they are in the file (float8 codes, GGUF quantized blocks), as a 1-D uint8 tensor:
    /// for weights kept compact in memory and decoded per layer.</summary>
    Tensor LoadRaw(string name) =>
        throw new NotSupportedException($"{Path} does not give its stored bytes (tensor '{name}'); only safetensors and GGUF files do.");

    /// <summary>The tensor kept as stored when the file stores it compactly for <paramref name="computeDType"/> (float8
    /// codes and GGUF quantized blocks always; float16/bfloat16 values when the compute dtype is wider:
    /// <see cref="CompactWeight.HalfIsCompactFor"/>), to be decoded per layer at run time (<see cref="CompactWeight"/>);
    /// null when it is not (or the file cannot give its stored values): load it with <see cref="ReadInto"/>.
    /// <paramref name="computeDType"/> null: float8 and quantized only.</summary>
    CompactWeight? LoadCompact(string name, ScalarType? computeDType = null) => null;

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
