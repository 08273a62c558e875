using Microsoft.Win32.SafeHandles;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpDiffusion.Loading;

/// <summary>One tensor's entry in a safetensors header: dtype, shape and byte range in the data section.</summary>
public sealed record SafetensorsEntry(string Name, string DType, long[] Shape, long Begin, long End)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// A safetensors file: 8-byte little-endian header length, a JSON header
/// (<c>dtype</c>, <c>shape</c>, <c>data_offsets</c> relative to the data section, optional <c>__metadata__</c>),
/// then raw little-endian data. Every offset is validated against the file size before any data is touched. Tensors
/// are read with positioned reads straight into their memory (no mapping: the file's pages are not faulted in one by
/// one, and none stay resident beside the weights).
/// </summary>
public sealed class SafetensorsFile : ITensorFile
{
    const long MaxHeaderBytes = 100L << 20; // the format's own limit is 100 MB

    static readonly Dictionary<string, (ScalarType Type, int Size)> DTypes = new()
    {
        ["F64"] = (ScalarType.Float64, 8),
        ["F32"] = (ScalarType.Float32, 4),
        ["F16"] = (ScalarType.Float16, 2),
        ["BF16"] = (ScalarType.BFloat16, 2),
        ["I64"] = (ScalarType.Int64, 8),
        ["I32"] = (ScalarType.Int32, 4),
        ["I16"] = (ScalarType.Int16, 2),
        ["I8"] = (ScalarType.Int8, 1),
        ["U8"] = (ScalarType.Byte, 1),
        ["BOOL"] = (ScalarType.Bool, 1),
        // No float8 tensors in TorchSharp: one byte each, decoded to float32 through a table (Float8).
        ["F8_E4M3"] = (ScalarType.Float32, 1),
        ["F8_E5M2"] = (ScalarType.Float32, 1),
    };

    readonly SafeFileHandle _file;
    readonly long _dataStart;

    public string Path { get; }
    public IReadOnlyDictionary<string, SafetensorsEntry> Tensors { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }
    public IReadOnlyList<TensorHeader> Headers => _headers ??= Tensors.Values.Select(e => new TensorHeader(e.Name, e.Shape) { StoredType = e.DType }).ToList();
    List<TensorHeader>? _headers;

    SafetensorsFile(string path, SafeFileHandle file, long dataStart,
        Dictionary<string, SafetensorsEntry> tensors, Dictionary<string, string> metadata)
    {
        Path = path;
        _file = file;
        _dataStart = dataStart;
        Tensors = tensors;
        Metadata = metadata;
    }

    public static SafetensorsFile Open(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"Safetensors file not found: {path}", path);
        var file = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        try
        {
            return Open(path, file);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    static SafetensorsFile Open(string path, SafeFileHandle file)
    {
        // The handle's length, not FileInfo's: FileInfo measures a symbolic link itself (the Hugging Face cache stores
        // every file as a link into blobs/), the handle the file it points to.
        long fileLength = RandomAccess.GetLength(file);
        if (fileLength < 8)
            throw Corrupt(path, $"the file has {fileLength} bytes, fewer than the 8-byte header length");

        Span<byte> lengthBytes = stackalloc byte[8];
        RandomAccess.Read(file, lengthBytes, 0);
        ulong headerLength = BitConverter.ToUInt64(lengthBytes);
        if (headerLength == 0 || headerLength > MaxHeaderBytes || (long)headerLength > fileLength - 8)
            throw Corrupt(path, $"the header claims {headerLength} bytes but the file has {fileLength} (truncated or not a safetensors file)");

        var headerBytes = new byte[headerLength];
        if (RandomAccess.Read(file, headerBytes, 8) != headerBytes.Length)
            throw Corrupt(path, "the file ended inside its header");
        long dataStart = 8 + (long)headerLength;
        long dataLength = fileLength - dataStart;
        var (tensors, metadata) = ParseHeader(path, headerBytes, dataLength);
        return new SafetensorsFile(path, file, dataStart, tensors, metadata);
    }

    static (Dictionary<string, SafetensorsEntry>, Dictionary<string, string>) ParseHeader(string path, byte[] header, long dataLength)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(header); }
        catch (JsonException e) { throw Corrupt(path, $"the header is not valid JSON ({e.Message})"); }

        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw Corrupt(path, "the header is not a JSON object");
            var tensors = new Dictionary<string, SafetensorsEntry>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var property in doc.RootElement.EnumerateObject())
            {
                if (property.Name == "__metadata__")
                {
                    if (property.Value.ValueKind == JsonValueKind.Object)
                        foreach (var m in property.Value.EnumerateObject())
                            metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : m.Value.GetRawText();
                    continue;
                }
                // JSON allows a repeated key; the later entry would silently win.
                if (!tensors.TryAdd(property.Name, ParseEntry(path, property.Name, property.Value, dataLength)))
                    throw Corrupt(path, $"tensor '{property.Name}' appears twice in the header");
            }
            RequireDisjoint(path, tensors.Values);
            return (tensors, metadata);
        }
    }

    static SafetensorsEntry ParseEntry(string path, string name, JsonElement e, long dataLength)
    {
        try
        {
            string dtype = e.GetProperty("dtype").GetString() ?? "";
            if (!DTypes.TryGetValue(dtype, out var info))
                throw Corrupt(path, $"tensor '{name}' has unsupported dtype '{dtype}'");
            long[] shape = e.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray();
            var offsets = e.GetProperty("data_offsets").EnumerateArray().Select(d => d.GetInt64()).ToArray();
            if (offsets.Length != 2)
                throw Corrupt(path, $"tensor '{name}' has {offsets.Length} data_offsets instead of 2");
            long begin = offsets[0], end = offsets[1];
            if (shape.Any(d => d < 0))
                throw Corrupt(path, $"tensor '{name}' has a negative dimension");
            if (begin < 0 || end < begin || end > dataLength)
                throw Corrupt(path, $"tensor '{name}' has data_offsets [{begin}, {end}] outside the data section of {dataLength} bytes (truncated file?)");
            long count = 1;
            foreach (long d in shape)
                count = d == 0 ? 0 : (count > long.MaxValue / d ? throw Corrupt(path, $"tensor '{name}' has an impossible shape") : count * d);
            if (count > end - begin || count * info.Size != end - begin)
                throw Corrupt(path, $"tensor '{name}' of shape [{string.Join(", ", shape)}] {dtype} needs {count * info.Size} bytes but its data_offsets span {end - begin}");
            return new SafetensorsEntry(name, dtype, shape, begin, end);
        }
        catch (Exception ex) when (ex is KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw Corrupt(path, $"tensor '{name}' has a malformed header entry ({ex.Message})");
        }
    }

    /// <summary>Two tensors sharing bytes would load as silently aliased (wrong) weights.</summary>
    static void RequireDisjoint(string path, IEnumerable<SafetensorsEntry> entries)
    {
        SafetensorsEntry? previous = null;
        foreach (var entry in entries.Where(e => e.End > e.Begin).OrderBy(e => e.Begin))
        {
            if (previous is not null && entry.Begin < previous.End)
                throw Corrupt(path, $"tensors '{previous.Name}' [{previous.Begin}, {previous.End}) and '{entry.Name}' [{entry.Begin}, {entry.End}) overlap in the data section");
            previous = entry;
        }
    }

    // Names come from the file: control characters in them would break the one-line message.
    static InvalidDataException Corrupt(string path, string what) =>
        new($"Corrupt safetensors file {path}: {string.Concat(what.Select(c => char.IsControl(c) ? ' ' : c))}. Re-download or re-save the file.");

    public bool Contains(string name) => Tensors.ContainsKey(name);

    /// <summary>Reads a tensor into a new CPU tensor of its stored dtype (float8: decoded to float32).</summary>
    public Tensor Load(string name)
    {
        var entry = Entry(name);
        var tensor = empty(entry.Shape, DTypes[entry.DType].Type);
        try
        {
            ReadInto(name, tensor); // the stored dtype, contiguous: read straight in
        }
        catch
        {
            tensor.Dispose();
            throw;
        }
        return tensor;
    }

    // Per thread and stored dtype, reused: a tensor that must be converted is read here first, not into new memory each time.
    readonly ThreadLocal<Dictionary<ScalarType, Tensor>> _staging = new(() => [], trackAllValues: true);

    /// <summary>Positioned reads and per-thread staging: tensors may be read on several threads.</summary>
    public bool ReadsInParallel => true;

    /// <summary>Straight into <paramref name="destination"/>'s memory when it is a contiguous CPU tensor of the stored dtype;
    /// otherwise through a reused staging buffer and one converting copy (new memory is paid for once, in the destination).</summary>
    public void ReadInto(string name, Tensor destination)
    {
        var entry = Entry(name);
        var stored = DTypes[entry.DType].Type;
        long length = entry.End - entry.Begin;
        if (destination.numel() != entry.ElementCount)
            throw new ArgumentException($"Tensor '{name}' of {Path} has {entry.ElementCount} elements; the destination {destination.numel()}.");
        if (length == 0) return;
        if (Float8.TableFor(entry.DType) is { } table)
        {
            ReadFloat8Into(entry, table, destination);
            return;
        }
        if (destination.dtype == stored && destination.device_type == TorchSharp.DeviceType.CPU && destination.is_contiguous())
        {
            CopyInto(destination, entry.Begin, length);
            return;
        }
        var buffers = _staging.Value!;
        if (!buffers.TryGetValue(stored, out var staging) || staging.numel() < entry.ElementCount)
        {
            staging?.Dispose();
            buffers[stored] = staging = empty(entry.ElementCount, stored);
        }
        using var values = staging.narrow(0, 0, entry.ElementCount);
        CopyInto(values, entry.Begin, length);
        using var shaped = values.view(destination.shape);
        destination.copy_(shaped);
    }

    /// <summary>The stored bytes of a tensor, as they are in the file (float8: one code per element), as a 1-D uint8 tensor.</summary>
    public Tensor LoadRaw(string name)
    {
        var entry = Entry(name);
        var bytes = empty(entry.End - entry.Begin, ScalarType.Byte);
        try
        {
            if (entry.End > entry.Begin) CopyInto(bytes, entry.Begin, entry.End - entry.Begin);
        }
        catch
        {
            bytes.Dispose();
            throw;
        }
        return bytes;
    }

    /// <summary>A float8 tensor's codes as a <see cref="CompactWeight"/>; an F16/BF16 tensor's values when
    /// <paramref name="computeDType"/> is wider (<see cref="CompactWeight.HalfIsCompactFor"/>); null otherwise.</summary>
    public CompactWeight? LoadCompact(string name, ScalarType? computeDType = null)
    {
        var entry = Entry(name);
        if (Float8.TableFor(entry.DType) is not null)
            return CompactWeight.Float8(LoadRaw(name), entry.Shape, entry.DType);
        if (entry.DType is not ("F16" or "BF16") || !CompactWeight.HalfIsCompactFor(computeDType))
            return null;
        var values = empty(entry.ElementCount, DTypes[entry.DType].Type); // read as stored: the bytes are the values
        try
        {
            if (entry.End > entry.Begin) CopyInto(values, entry.Begin, entry.End - entry.Begin);
            return CompactWeight.Half(values, entry.Shape);
        }
        catch
        {
            values.Dispose();
            throw;
        }
    }

    /// <summary>float8 codes decoded by table, in chunks, straight into a contiguous float32 CPU destination, otherwise
    /// into a reused float32 staging buffer and one converting copy.</summary>
    void ReadFloat8Into(SafetensorsEntry entry, float[] table, Tensor destination)
    {
        var buffers = _staging.Value!;
        bool direct = destination.dtype == ScalarType.Float32 && destination.device_type == TorchSharp.DeviceType.CPU && destination.is_contiguous();
        Tensor? values = null;
        if (!direct)
        {
            if (!buffers.TryGetValue(ScalarType.Float32, out var staging) || staging.numel() < entry.ElementCount)
            {
                staging?.Dispose();
                buffers[ScalarType.Float32] = staging = empty(entry.ElementCount, ScalarType.Float32);
            }
            values = staging.narrow(0, 0, entry.ElementCount);
        }
        try
        {
            var target = values ?? destination;
            var codes = _codes.Value!;
            for (long done = 0; done < entry.ElementCount;)
            {
                int chunk = (int)Math.Min(entry.ElementCount - done, codes.Length);
                ReadExactly(codes.AsSpan(0, chunk), entry.Begin + done);
                Float8.Decode(codes.AsSpan(0, chunk), TensorMemory.Span<float>(target, done, chunk), table);
                done += chunk;
            }
            if (values is not null)
            {
                using var shaped = values.view(destination.shape);
                destination.copy_(shaped);
            }
        }
        finally
        {
            values?.Dispose();
        }
    }

    // Per thread: the float8 codes of one chunk, decoded before the next is read.
    readonly ThreadLocal<byte[]> _codes = new(() => new byte[1 << 22]);

    void ReadExactly(Span<byte> bytes, long begin)
    {
        for (int done = 0; done < bytes.Length;)
        {
            int read = RandomAccess.Read(_file, bytes[done..], _dataStart + begin + done);
            if (read == 0)
                throw Corrupt(Path, $"the file ended while reading bytes {begin + done}..{begin + bytes.Length} of the data section (truncated while in use?)");
            done += read;
        }
    }

    SafetensorsEntry Entry(string name) =>
        Tensors.TryGetValue(name, out var entry) ? entry : throw new KeyNotFoundException($"Tensor '{name}' is not in {Path}");

    /// <summary>The bytes [begin, begin + length) of the data section into the tensor's memory (new, contiguous, on the
    /// CPU), in reads of at most 1 GiB.</summary>
    void CopyInto(Tensor tensor, long begin, long length)
    {
        for (long done = 0; done < length;)
        {
            int chunk = (int)Math.Min(length - done, 1L << 30);
            ReadExactly(TensorMemory.Bytes(tensor, done, chunk), begin + done);
            done += chunk;
        }
    }

    public void Dispose()
    {
        foreach (var buffers in _staging.Values)
            foreach (var staging in buffers.Values) staging.Dispose();
        _staging.Dispose();
        _codes.Dispose();
        _file.Dispose();
    }
}
