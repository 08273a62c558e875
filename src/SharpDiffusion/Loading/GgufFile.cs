using Microsoft.Win32.SafeHandles;
using static TorchSharp.torch;

namespace SharpDiffusion.Loading;

/// <summary>One tensor of a GGUF file: its ggml type, torch shape (slowest first) and absolute byte range.</summary>
public sealed record GgufTensorInfo(string Name, GgmlType Type, long[] Shape, long Begin, long Bytes)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// A GGUF file (ggml's docs/gguf.md, versions 2 and 3, little-endian): magic "GGUF", uint32 version, uint64 tensor and
/// metadata counts, the metadata key/values, the tensor infos (name, dims fastest-first, ggml type, offset from the
/// aligned start of the data), padding to <c>general.alignment</c> (default 32), the data. Every range is checked
/// against the file size when it is opened; a tensor type SharpDiffusion does not dequantize is refused by name then.
/// Values are read as SafetensorsFile reads them: positioned reads, in chunks, dequantized into the destination.
/// </summary>
public sealed class GgufFile : ITensorFile
{
    const uint Magic = 0x46554747; // "GGUF" read as a little-endian uint32
    const int MaxDims = 4;         // GGML_MAX_DIMS

    readonly SafeFileHandle _file;
    List<TensorHeader>? _headers;

    public string Path { get; }
    public uint Version { get; }
    /// <summary>How quantized blocks are dequantized (float32 unless opened otherwise).</summary>
    public GgufArithmetic Arithmetic { get; }
    public long Alignment { get; }
    /// <summary>Every metadata key/value (numbers as their C# type, strings, typed arrays).</summary>
    public IReadOnlyDictionary<string, object> Metadata { get; }
    /// <summary><c>general.architecture</c> ("flux", "sd3", "t5", ...), or null when the file does not say.</summary>
    public string? Architecture => Metadata.GetValueOrDefault("general.architecture") as string;
    public IReadOnlyDictionary<string, GgufTensorInfo> Tensors { get; }
    public IReadOnlyList<TensorHeader> Headers => _headers ??=
        Tensors.Values.Select(t => new TensorHeader(t.Name, t.Shape) { StoredType = t.Type.ToString() }).ToList();

    GgufFile(string path, SafeFileHandle file, uint version, long alignment, Dictionary<string, object> metadata,
        Dictionary<string, GgufTensorInfo> tensors, GgufArithmetic arithmetic)
    {
        (Path, _file, Version, Alignment, Metadata, Tensors, Arithmetic) = (path, file, version, alignment, metadata, tensors, arithmetic);
    }

    /// <param name="arithmetic">float32 (ggml's dequantization, the default) or float16 rounding after each operation
    /// (ComfyUI-GGUF's default, to reproduce its values bit for bit).</param>
    public static GgufFile Open(string path, GgufArithmetic arithmetic = GgufArithmetic.Float32)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"GGUF file not found: {path}", path);
        var file = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        try
        {
            return Open(path, file, arithmetic);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    static GgufFile Open(string path, SafeFileHandle file, GgufArithmetic arithmetic)
    {
        long fileLength = RandomAccess.GetLength(file); // the handle's: a symbolic link's target, not the link
        var reader = new GgufHeaderReader(file, fileLength, what => Corrupt(path, what));
        if (fileLength < 24 || reader.U32("the magic") != Magic)
            throw Corrupt(path, "it does not start with \"GGUF\" (not a GGUF file)");
        uint version = reader.U32("the version");
        if (version is not (2 or 3))
            throw new InvalidDataException($"{path} is GGUF version {version}{(version > 0xFFFF ? " (a big-endian file?)" : "")}; SharpDiffusion reads versions 2 and 3 (little-endian). Re-convert the model with a current gguf tool.");
        long tensorCount = reader.Count("the tensor count", 8 + 4 + 4 + 8);  // name length, dims count, type, offset
        long metadataCount = reader.Count("the metadata count", 8 + 4 + 1);  // key length, value type, one byte

        var metadata = new Dictionary<string, object>(StringComparer.Ordinal);
        for (long i = 0; i < metadataCount; i++)
        {
            string key = reader.String("a metadata key");
            uint type = reader.U32($"the value type of metadata '{key}'");
            if (!metadata.TryAdd(key, reader.Value(type, key)))
                throw Corrupt(path, $"metadata '{key}' appears twice");
        }
        long alignment = AlignmentOf(path, metadata);

        var infos = new List<(string Name, uint Type, ulong[] Dims, ulong Offset)>();
        for (long i = 0; i < tensorCount; i++)
        {
            string name = reader.String("a tensor name");
            uint dimCount = reader.U32($"the dimension count of tensor '{name}'");
            if (dimCount > MaxDims)
                throw Corrupt(path, $"tensor '{name}' has {dimCount} dimensions (GGUF allows at most {MaxDims})");
            var dims = new ulong[dimCount];
            for (int d = 0; d < dimCount; d++) dims[d] = reader.U64($"the dimensions of tensor '{name}'");
            uint type = reader.U32($"the type of tensor '{name}'");
            infos.Add((name, type, dims, reader.U64($"the offset of tensor '{name}'")));
        }
        long dataStart = (reader.Position + alignment - 1) / alignment * alignment;

        var tensors = new Dictionary<string, GgufTensorInfo>(StringComparer.Ordinal);
        foreach (var info in infos)
            if (!tensors.TryAdd(info.Name, Describe(path, info, metadata, alignment, dataStart, fileLength)))
                throw Corrupt(path, $"tensor '{info.Name}' appears twice");
        RequireDisjoint(path, tensors.Values);
        return new GgufFile(path, file, version, alignment, metadata, tensors, arithmetic);
    }

    static long AlignmentOf(string path, Dictionary<string, object> metadata)
    {
        if (!metadata.TryGetValue("general.alignment", out var value)) return 32;
        // The spec stores it as uint32; any integer type is taken as long as it is a power of two.
        long alignment = value switch { uint u => u, int i => i, ulong u => (long)Math.Min(u, long.MaxValue), long l => l, ushort u => u, byte b => b, _ => -1 };
        if (alignment <= 0 || alignment > 1 << 30 || (alignment & (alignment - 1)) != 0)
            throw Corrupt(path, $"general.alignment is {value}, not a power of two");
        return alignment;
    }

    /// <summary>A tensor info checked: a type we read, whole blocks, an aligned offset and data inside the file.</summary>
    static GgufTensorInfo Describe(string path, (string Name, uint Type, ulong[] Dims, ulong Offset) info,
        Dictionary<string, object> metadata, long alignment, long dataStart, long fileLength)
    {
        string name = info.Name;
        if (!GgufQuantization.IsSupported((GgmlType)info.Type))
            throw new NotSupportedException(Clean($"GGUF tensor '{name}' in {path} has type {GgufQuantization.NameOf(info.Type)}, which SharpDiffusion does not read; " +
                $"it reads {GgufQuantization.Supported}. Use a GGUF quantized to one of those (or the safetensors weights)."));
        var type = (GgmlType)info.Type;
        long count = 1;
        foreach (ulong d in info.Dims)
            count = d == 0 ? 0 : (d > long.MaxValue || (ulong)count > (ulong)long.MaxValue / d ? throw Corrupt(path, $"tensor '{name}' has an impossible shape") : count * (long)d);
        var (blockElements, blockBytes) = GgufQuantization.BlockOf(type);
        long rowLength = info.Dims.Length > 0 ? (long)info.Dims[0] : 1;
        if (rowLength % blockElements != 0)
            throw Corrupt(path, $"tensor '{name}' of type {type} has rows of {rowLength} values, not a multiple of its block of {blockElements}");
        if (info.Offset % (ulong)alignment != 0)
            throw Corrupt(path, $"tensor '{name}' starts at data offset {info.Offset}, not a multiple of the alignment {alignment}");
        long blocks = count / blockElements;
        // Compared before multiplying: a bogus shape cannot overflow the byte count.
        if (info.Offset > (ulong)fileLength || blocks > (fileLength - dataStart - (long)info.Offset) / blockBytes)
            throw Corrupt(path, $"tensor '{name}' ({blocks} blocks of {blockBytes} bytes) does not fit between data offset {info.Offset} and the end of the file at {fileLength} bytes (truncated file?)");
        long bytes = blocks * blockBytes;

        long[] shape = info.Dims.Reverse().Select(d => (long)d).ToArray(); // ne0 is the fastest: torch's last dimension
        // ComfyUI-GGUF's converter stores some tensors flattened and keeps the torch shape here (int32 array).
        if (metadata.GetValueOrDefault($"comfy.gguf.orig_shape.{name}") is int[] original)
        {
            if (original.Any(d => d < 0) || original.Aggregate(1L, (a, d) => a * d) != count)
                throw Corrupt(path, $"comfy.gguf.orig_shape.{name} [{string.Join(", ", original)}] does not hold the tensor's {count} values");
            shape = original.Select(d => (long)d).ToArray();
        }
        return new GgufTensorInfo(name, type, shape, dataStart + (long)info.Offset, bytes);
    }

    static void RequireDisjoint(string path, IEnumerable<GgufTensorInfo> tensors)
    {
        GgufTensorInfo? previous = null;
        foreach (var t in tensors.Where(t => t.Bytes > 0).OrderBy(t => t.Begin))
        {
            if (previous is not null && t.Begin < previous.Begin + previous.Bytes)
                throw Corrupt(path, $"tensors '{previous.Name}' and '{t.Name}' overlap in the data");
            previous = t;
        }
    }

    // Names come from the file: control characters in them would break the one-line message.
    static string Clean(string s) => string.Concat(s.Select(c => char.IsControl(c) ? ' ' : c));

    static InvalidDataException Corrupt(string path, string what) =>
        new(Clean($"Corrupt GGUF file {path}: {what}. Re-download or re-convert the file."));

    public bool Contains(string name) => Tensors.ContainsKey(name);

    GgufTensorInfo Info(string name) =>
        Tensors.TryGetValue(name, out var info) ? info : throw new KeyNotFoundException($"Tensor '{name}' is not in {Path}");

    /// <summary>The dtype <see cref="Load"/> gives: F32/F16/BF16 as stored, quantized types dequantized to float32.</summary>
    static ScalarType LoadedType(GgmlType type) => type switch
    {
        GgmlType.F16 => ScalarType.Float16,
        GgmlType.BF16 => ScalarType.BFloat16,
        _ => ScalarType.Float32,
    };

    public Tensor Load(string name)
    {
        var info = Info(name);
        var tensor = empty(info.Shape, LoadedType(info.Type));
        try
        {
            ReadInto(name, tensor);
        }
        catch
        {
            tensor.Dispose();
            throw;
        }
        return tensor;
    }

    /// <summary>The stored blocks as a 1-D uint8 tensor, for weights kept quantized in memory.</summary>
    public Tensor LoadRaw(string name)
    {
        var info = Info(name);
        var bytes = empty(info.Bytes, ScalarType.Byte);
        try
        {
            ReadStored(info, bytes);
        }
        catch
        {
            bytes.Dispose();
            throw;
        }
        return bytes;
    }

    /// <summary>A quantized tensor's blocks as a <see cref="CompactWeight"/> dequantized with this file's arithmetic; an
    /// F16/BF16 tensor's values when <paramref name="computeDType"/> is wider (<see cref="CompactWeight.HalfIsCompactFor"/>);
    /// null otherwise (F32, or half floats under a half compute dtype: plain floats).</summary>
    public CompactWeight? LoadCompact(string name, ScalarType? computeDType = null)
    {
        var info = Info(name);
        if (CompactWeight.IsCompact(info.Type))
            return CompactWeight.Gguf(LoadRaw(name), info.Shape, info.Type, Arithmetic);
        if (info.Type is not (GgmlType.F16 or GgmlType.BF16) || !CompactWeight.HalfIsCompactFor(computeDType))
            return null;
        var values = empty(info.ElementCount, LoadedType(info.Type)); // little-endian half floats: the bytes are the values
        try
        {
            ReadStored(info, values);
            return CompactWeight.Half(values, info.Shape);
        }
        catch
        {
            values.Dispose();
            throw;
        }
    }

    /// <summary>Positioned reads and per-thread buffers: tensors may be read on several threads.</summary>
    public bool ReadsInParallel => true;

    // Per thread: one chunk of stored blocks, and a float32 staging tensor for destinations we cannot write into.
    readonly ThreadLocal<byte[]> _chunk = new(() => new byte[ChunkBytes]);
    readonly ThreadLocal<Tensor?> _staging = new(() => null, trackAllValues: true);
    const int ChunkBytes = 4 << 20;

    /// <summary>Dequantized chunk by chunk straight into a contiguous CPU destination of the loaded dtype; otherwise
    /// into a reused float32 staging buffer and one converting copy.</summary>
    public void ReadInto(string name, Tensor destination)
    {
        var info = Info(name);
        if (destination.numel() != info.ElementCount)
            throw new ArgumentException($"Tensor '{name}' of {Path} has {info.ElementCount} elements; the destination {destination.numel()}.");
        if (info.ElementCount == 0) return;
        bool direct = destination.device_type == TorchSharp.DeviceType.CPU && destination.is_contiguous();
        if (direct && destination.dtype == LoadedType(info.Type) && info.Type is GgmlType.F16 or GgmlType.BF16)
        {
            ReadStored(info, destination);
            return;
        }
        if (direct && destination.dtype == ScalarType.Float32)
        {
            Dequantize(info, destination);
            return;
        }
        var staging = _staging.Value;
        if (staging is null || staging.numel() < info.ElementCount)
        {
            staging?.Dispose();
            _staging.Value = staging = empty(info.ElementCount, ScalarType.Float32);
        }
        using var values = staging.narrow(0, 0, info.ElementCount);
        Dequantize(info, values);
        using var shaped = values.view(destination.shape);
        destination.copy_(shaped);
    }

    /// <summary>Whole blocks at a time, about <see cref="ChunkBytes"/> of them, into a contiguous float32 CPU tensor.</summary>
    void Dequantize(GgufTensorInfo info, Tensor values)
    {
        var (blockElements, blockBytes) = GgufQuantization.BlockOf(info.Type);
        var chunk = _chunk.Value!;
        long blocks = info.Bytes / blockBytes, blocksPerChunk = ChunkBytes / blockBytes;
        for (long done = 0; done < blocks;)
        {
            int n = (int)Math.Min(blocks - done, blocksPerChunk);
            var stored = chunk.AsSpan(0, n * blockBytes);
            ReadExactly(info, stored, done * blockBytes);
            GgufQuantization.Dequantize(info.Type, stored, TensorMemory.Span<float>(values, done * blockElements, n * blockElements), Arithmetic);
            done += n;
        }
    }

    /// <summary>A tensor's stored bytes as they are into a contiguous CPU tensor's memory, in reads of at most 1 GiB.</summary>
    void ReadStored(GgufTensorInfo info, Tensor target)
    {
        for (long done = 0; done < info.Bytes;)
        {
            int chunk = (int)Math.Min(info.Bytes - done, 1L << 30);
            ReadExactly(info, TensorMemory.Bytes(target, done, chunk), done);
            done += chunk;
        }
    }

    /// <summary>Bytes [from, from + span.Length) of a tensor's data.</summary>
    void ReadExactly(GgufTensorInfo info, Span<byte> span, long from)
    {
        for (int done = 0; done < span.Length;)
        {
            int read = RandomAccess.Read(_file, span[done..], info.Begin + from + done);
            if (read == 0)
                throw Corrupt(Path, $"the file ended while reading tensor '{info.Name}' (truncated while in use?)");
            done += read;
        }
    }

    public void Dispose()
    {
        foreach (var staging in _staging.Values) staging?.Dispose();
        _staging.Dispose();
        _chunk.Dispose();
        _file.Dispose();
    }
}
