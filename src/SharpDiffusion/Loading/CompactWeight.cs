using static TorchSharp.torch;

namespace SharpDiffusion.Loading;

/// <summary>
/// A weight kept in memory as its file stores it (float8 codes, GGUF quantized blocks) and turned into the compute dtype
/// only when a layer runs (<see cref="Models.CompactLinear"/>), so memory follows the file, not the float size: a Q8_0
/// Flux.1 holds ~8.5 bits a weight, float8 8, against bfloat16's 16. The values <see cref="Dequantize"/> gives are the
/// ones loading the same tensor through <see cref="ITensorFile.ReadInto"/> gives (same decoder, same float32 staging,
/// same rounding to the compute dtype), bit for bit.
/// </summary>
public sealed class CompactWeight : IDisposable
{
    readonly float[]? _float8;           // decode table of a float8 weight
    readonly GgmlType _ggml;             // block type of a GGUF weight
    readonly GgufArithmetic _arithmetic;
    readonly int _blockElements, _blockBytes;

    CompactWeight(Tensor bytes, long[] shape, string storedType, float[]? float8, GgmlType ggml, GgufArithmetic arithmetic)
    {
        (Bytes, Shape, StoredType, _float8, _ggml, _arithmetic) = (bytes, shape, storedType, float8, ggml, arithmetic);
        (_blockElements, _blockBytes) = float8 is not null ? (1, 1) : GgufQuantization.BlockOf(ggml);
        long expected = ElementCount / _blockElements * _blockBytes;
        if (bytes.dtype != ScalarType.Byte || bytes.dim() != 1 || bytes.numel() != expected || ElementCount % _blockElements != 0)
            throw new ArgumentException($"CompactWeight: {bytes.numel()} stored bytes of {storedType} do not hold [{string.Join(", ", shape)}] (expected {expected}).");
    }

    /// <summary>The stored bytes, a 1-D uint8 CPU tensor (this object owns it).</summary>
    public Tensor Bytes { get; }

    /// <summary>The weight's torch shape ([out, in] for a linear layer).</summary>
    public long[] Shape { get; }

    /// <summary>The stored type in its format's words: "F8_E4M3", "F8_E5M2", "Q8_0", "Q4_K", ...</summary>
    public string StoredType { get; }

    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);

    /// <summary>Resident bytes (the file's size of this tensor).</summary>
    public long ByteCount => Bytes.numel();

    /// <summary>float8 codes (<c>F8_E4M3</c>/<c>F8_E5M2</c>), one byte an element; takes <paramref name="bytes"/>.</summary>
    public static CompactWeight Float8(Tensor bytes, long[] shape, string safetensorsDType) =>
        new(bytes, shape, safetensorsDType, Loading.Float8.TableFor(safetensorsDType)
            ?? throw new ArgumentException($"CompactWeight: {safetensorsDType} is not a float8 dtype (F8_E4M3, F8_E5M2)."), default, default);

    /// <summary>GGUF blocks of <paramref name="type"/>, dequantized with <paramref name="arithmetic"/>; takes <paramref name="bytes"/>.</summary>
    public static CompactWeight Gguf(Tensor bytes, long[] shape, GgmlType type, GgufArithmetic arithmetic) =>
        new(bytes, shape, type.ToString(), null, type, arithmetic);

    /// <summary>Whether a GGUF type is worth keeping compact: a quantized block type (F32/F16/BF16 are plain floats).</summary>
    public static bool IsCompact(GgmlType type) => GgufQuantization.IsSupported(type) && type is not (GgmlType.F32 or GgmlType.F16 or GgmlType.BF16);

    /// <summary>Rows [start, start + count) of a 2-D (or higher) weight as a compact weight of its own (a copy: the fused
    /// tensor it came from may be freed). A row is whole blocks (GGUF rows are multiples of the block), so rows are
    /// byte ranges.</summary>
    public CompactWeight Rows(long start, long count)
    {
        long rowBytes = Bytes.numel() / Shape[0];
        if (start < 0 || count < 0 || start + count > Shape[0])
            throw new ArgumentOutOfRangeException(nameof(start), $"Rows [{start}, {start + count}) of a {StoredType} weight of {Shape[0]} rows.");
        using var slice = Bytes.narrow(0, start * rowBytes, count * rowBytes);
        long[] shape = [count, .. Shape[1..]];
        return new CompactWeight(slice.clone(), shape, StoredType, _float8, _ggml, _arithmetic);
    }

    /// <summary>A new tensor of <see cref="Shape"/> in <paramref name="dtype"/>: the stored values decoded to float32
    /// (in parallel, a block range per task), then rounded to <paramref name="dtype"/> as a converting copy does.</summary>
    public Tensor Dequantize(ScalarType dtype)
    {
        if (_float8 is null && _ggml == GgmlType.Q8_0 && Bytes.numel() <= int.MaxValue)
            return DequantizeQ8_0(dtype);
        var values = empty(Shape, ScalarType.Float32);
        try
        {
            DecodeInto(values);
            if (dtype == ScalarType.Float32) return values;
            using (values) return values.to(dtype);
        }
        catch
        {
            values.Dispose();
            throw;
        }
    }

    /// <summary>Q8_0 with libtorch's vectorised, threaded kernels: x = d·q per block of 32, the product rounded to float16
    /// under <see cref="GgufArithmetic.Float16"/> (a float16 multiply rounds the exact float32 product, d·q having 19
    /// significant bits at most) or kept in float32: the values <see cref="GgufQuantization"/> gives, much faster.</summary>
    Tensor DequantizeQ8_0(ScalarType dtype)
    {
        long n = Bytes.numel() / 34;
        using var scope = NewDisposeScope();
        var d = empty([n, 1], ScalarType.Float32);                               // [n, 1]: each block's float16 scale
        var scales = TensorMemory.Span<float>(d, 0, (int)n);
        var stored = TensorMemory.Bytes(Bytes, 0, (int)Bytes.numel());
        for (int b = 0; b < scales.Length; b++)
            scales[b] = (float)BitConverter.UInt16BitsToHalf(System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(stored[(34 * b)..]));
        var u = Bytes.view(-1, 34).narrow(1, 2, 32).to(ScalarType.Int16);          // [n, 32] codes as unsigned bytes
        var q = u.sub_(u.ge(128).to(ScalarType.Int16).mul_(256));                 // as int8: u − 256 when u ≥ 128
        var x = _arithmetic == GgufArithmetic.Float16
            ? q.to(ScalarType.Float16).mul_(d.to(ScalarType.Float16))
            : q.to(ScalarType.Float32).mul_(d);
        return x.view(Shape).to(dtype).MoveToOuterDisposeScope();
    }

    // Elements per task: a few hundred KB of output, enough to amortise the task, small enough to balance.
    const long ChunkElements = 1 << 16;

    /// <summary>The float32 values into a contiguous CPU float32 tensor of as many elements.</summary>
    void DecodeInto(Tensor values)
    {
        long total = ElementCount;
        long chunk = ChunkElements / _blockElements * _blockElements;
        long chunks = (total + chunk - 1) / chunk;
        Parallel.For(0L, chunks, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, c =>
        {
            long start = c * chunk;
            int n = (int)Math.Min(chunk, total - start);
            var output = TensorMemory.Span<float>(values, start, n);
            var stored = TensorMemory.Bytes(Bytes, start / _blockElements * _blockBytes, n / _blockElements * _blockBytes);
            if (_float8 is not null) Loading.Float8.Decode(stored, output, _float8);
            else GgufQuantization.Dequantize(_ggml, stored, output, _arithmetic);
        });
    }

    public void Dispose() => Bytes.Dispose();
}
