using static TorchSharp.torch;

namespace SharpDiffusion.Loading;

/// <summary>
/// A weight kept in memory as its file stores it (float8 codes, GGUF quantized blocks, float16/bfloat16 values under a
/// float32 compute dtype) and turned into the compute dtype only when a layer runs (<see cref="Models.Linear"/>), so
/// memory follows the file, not the float size: a Q8_0 Flux.1 holds ~8.5 bits a weight, float8 8, bfloat16 16 against
/// float32's 32 (ComfyUI's "manual cast": on CPUs without native bfloat16 the float32 matmul is the fast one). An optional
/// per-tensor scale (ComfyUI's scaled float8: W = W₈·scale, <see cref="ScaledFloat8File"/>) multiplies the float32 values.
/// The values <see cref="Dequantize"/> gives are the ones loading the same tensor through <see cref="ITensorFile.ReadInto"/>
/// gives (same decoder, same float32 staging and scale product, same rounding to the compute dtype), bit for bit.
/// </summary>
public sealed class CompactWeight : IDisposable
{
    readonly float[]? _float8;           // decode table of a float8 weight
    readonly GgmlType _ggml;             // block type of a GGUF weight
    readonly GgufArithmetic _arithmetic;
    readonly int _blockElements, _blockBytes;

    CompactWeight(Tensor stored, long[] shape, string storedType, float[]? float8, GgmlType ggml, GgufArithmetic arithmetic, float? scale)
    {
        (Stored, Shape, StoredType, _float8, _ggml, _arithmetic, Scale) = (stored, shape, storedType, float8, ggml, arithmetic, scale);
        if (IsHalf)
        {
            if (stored.dim() != 1 || stored.numel() != ElementCount)
                throw new ArgumentException($"CompactWeight: {stored.numel()} stored {storedType} values do not hold [{string.Join(", ", shape)}].");
            return;
        }
        (_blockElements, _blockBytes) = float8 is not null ? (1, 1) : GgufQuantization.BlockOf(ggml);
        long expected = ElementCount / _blockElements * _blockBytes;
        if (stored.dtype != ScalarType.Byte || stored.dim() != 1 || stored.numel() != expected || ElementCount % _blockElements != 0)
            throw new ArgumentException($"CompactWeight: {stored.numel()} stored bytes of {storedType} do not hold [{string.Join(", ", shape)}] (expected {expected}).");
    }

    /// <summary>The stored values as the file holds them, a 1-D CPU tensor this object owns: uint8 codes or blocks (float8,
    /// GGUF), or the float16/bfloat16 values themselves.</summary>
    public Tensor Stored { get; }

    /// <summary>The weight's torch shape ([out, in] for a linear layer).</summary>
    public long[] Shape { get; }

    /// <summary>The stored type in its format's words: "F8_E4M3", "F8_E5M2", "Q8_0", "Q4_K", "F16", "BF16", ...</summary>
    public string StoredType { get; }

    /// <summary>The per-tensor scale the decoded float32 values are multiplied by (scaled float8), or null.</summary>
    public float? Scale { get; private set; }

    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);

    /// <summary>Resident bytes (the file's size of this tensor).</summary>
    public long ByteCount => Stored.numel() * Stored.ElementSize;

    bool IsHalf => Stored.dtype is ScalarType.Float16 or ScalarType.BFloat16;

    /// <summary>float8 codes (<c>F8_E4M3</c>/<c>F8_E5M2</c>), one byte an element; takes <paramref name="bytes"/>.</summary>
    public static CompactWeight Float8(Tensor bytes, long[] shape, string safetensorsDType) =>
        new(bytes, shape, safetensorsDType, Loading.Float8.TableFor(safetensorsDType)
            ?? throw new ArgumentException($"CompactWeight: {safetensorsDType} is not a float8 dtype (F8_E4M3, F8_E5M2)."), default, default, null);

    /// <summary>GGUF blocks of <paramref name="type"/>, dequantized with <paramref name="arithmetic"/>; takes <paramref name="bytes"/>.</summary>
    public static CompactWeight Gguf(Tensor bytes, long[] shape, GgmlType type, GgufArithmetic arithmetic) =>
        new(bytes, shape, type.ToString(), null, type, arithmetic, null);

    /// <summary>float16 or bfloat16 values (a 1-D tensor of that dtype, taken), two bytes an element, converted per call.</summary>
    public static CompactWeight Half(Tensor values, long[] shape) => values.dtype switch
    {
        ScalarType.Float16 => new(values, shape, "F16", null, default, default, null),
        ScalarType.BFloat16 => new(values, shape, "BF16", null, default, default, null),
        _ => throw new ArgumentException($"CompactWeight.Half: {values.dtype} values; float16 or bfloat16 expected."),
    };

    /// <summary>Whether a GGUF type is worth keeping compact whatever the compute dtype: a quantized block type (F32/F16/BF16
    /// are plain floats; F16/BF16 are compact only under a wider compute dtype: <see cref="HalfIsCompactFor"/>).</summary>
    public static bool IsCompact(GgmlType type) => GgufQuantization.IsSupported(type) && type is not (GgmlType.F32 or GgmlType.F16 or GgmlType.BF16);

    /// <summary>Whether float16/bfloat16 stored weights stay compact under <paramref name="computeDType"/>: when it is wider
    /// (float32: 2 bytes a weight instead of 4); under a half compute dtype they are converted once at load as before.</summary>
    public static bool HalfIsCompactFor(ScalarType? computeDType) => computeDType is ScalarType.Float32 or ScalarType.Float64;

    /// <summary>Gives this weight its per-tensor scale (W = decoded · scale, in float32); returns this.</summary>
    public CompactWeight WithScale(float scale)
    {
        if (Scale is not null)
            throw new InvalidOperationException($"CompactWeight: a {StoredType} weight of [{string.Join(", ", Shape)}] already has a scale.");
        Scale = scale;
        return this;
    }

    /// <summary>Rows [start, start + count) of a 2-D (or higher) weight as a compact weight of its own (a copy: the fused
    /// tensor it came from may be freed), with the same scale. A row is whole blocks (GGUF rows are multiples of the
    /// block), so rows are ranges of the stored tensor.</summary>
    public CompactWeight Rows(long start, long count)
    {
        if (start < 0 || count < 0 || start + count > Shape[0])
            throw new ArgumentOutOfRangeException(nameof(start), $"Rows [{start}, {start + count}) of a {StoredType} weight of {Shape[0]} rows.");
        long row = Stored.numel() / Shape[0];
        using var slice = Stored.narrow(0, start * row, count * row);
        return Like(slice.clone(), [count, .. Shape[1..]]);
    }

    /// <summary>The weight with its two row halves exchanged (the original MMDiT's and BFL's final adaLN give (shift, scale),
    /// diffusers' (scale, shift)), a copy.</summary>
    public CompactWeight HalvesSwapped()
    {
        if (Shape.Length == 0 || Shape[0] % 2 != 0)
            throw new ArgumentException($"CompactWeight: a {StoredType} weight of [{string.Join(", ", Shape)}] has no two row halves.");
        long half = Stored.numel() / 2;
        using var first = Stored.narrow(0, 0, half);
        using var second = Stored.narrow(0, half, half);
        return Like(cat([second, first], 0), Shape);
    }

    CompactWeight Like(Tensor stored, long[] shape) => new(stored, shape, StoredType, _float8, _ggml, _arithmetic, Scale);

    /// <summary>A new tensor of <see cref="Shape"/> in <paramref name="dtype"/>: the stored values decoded to float32
    /// (in parallel, a block range per task, SIMD for Q8_0 in both arithmetics), times the scale if any, then rounded to
    /// <paramref name="dtype"/> as a converting copy does. float16/bfloat16 values convert exactly to float32 (libtorch's
    /// vectorised, threaded copy).</summary>
    public Tensor Dequantize(ScalarType dtype)
    {
        if (IsHalf)
        {
            using var values = Stored.view(Shape);
            return Scale is null ? values.to(dtype, copy: true) : Scaled(values.to(ScalarType.Float32, copy: true), dtype);
        }
        var decoded = empty(Shape, ScalarType.Float32);
        try
        {
            DecodeInto(decoded);
        }
        catch
        {
            decoded.Dispose();
            throw;
        }
        return Scaled(decoded, dtype);
    }

    /// <summary>The same values as <see cref="Dequantize(ScalarType)"/> written into <paramref name="into"/> (a contiguous
    /// CPU tensor of <see cref="Shape"/> in <paramref name="dtype"/>, e.g. one buffer a layer reuses on every call, so no
    /// fresh > 32 MB allocation, whose pages the kernel zeroes, per forward); returns <paramref name="into"/>. Float32 with
    /// no scale decodes straight into it; otherwise a float32 staging tensor is converted into it (the same rounding).</summary>
    /// <summary>Whether <see cref="Dequantize(ScalarType, Tensor)"/> writes the values straight into the destination's
    /// memory (GGUF blocks or float8 codes into float32, no scale) rather than converting a staged copy.</summary>
    public bool DecodesInPlace(ScalarType dtype) => !IsHalf && dtype == ScalarType.Float32 && Scale is null;

    public Tensor Dequantize(ScalarType dtype, Tensor into)
    {
        if (into.dtype != dtype || !into.shape.SequenceEqual(Shape) || !into.is_contiguous() || into.device_type != TorchSharp.DeviceType.CPU)
            throw new ArgumentException($"CompactWeight.Dequantize: the destination is {into.dtype} [{string.Join(", ", into.shape)}]; "
                + $"a contiguous CPU {dtype} tensor of [{string.Join(", ", Shape)}] is needed for this {StoredType} weight.");
        if (DecodesInPlace(dtype))
        {
            DecodeInto(into);
            return into;
        }
        using var values = Dequantize(dtype);
        into.copy_(values);
        return into;
    }

    /// <summary>Float32 <paramref name="values"/> (taken) times the scale, in <paramref name="dtype"/>: the product
    /// <see cref="ScaledFloat8File"/> forms at load (a float32 tensor times a 0-dim float32 tensor).</summary>
    Tensor Scaled(Tensor values, ScalarType dtype)
    {
        try
        {
            if (Scale is { } s)
            {
                using var scale = tensor(s, ScalarType.Float32);
                values.mul_(scale);
            }
            if (dtype == ScalarType.Float32) return values;
        }
        catch
        {
            values.Dispose();
            throw;
        }
        using (values) return values.to(dtype);
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
            var stored = TensorMemory.Bytes(Stored, start / _blockElements * _blockBytes, n / _blockElements * _blockBytes);
            if (_float8 is not null) Loading.Float8.Decode(stored, output, _float8);
            else GgufQuantization.Dequantize(_ggml, stored, output, _arithmetic);
        });
    }

    public void Dispose() => Stored.Dispose();
}
