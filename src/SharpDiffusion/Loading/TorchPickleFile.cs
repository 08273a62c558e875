using System.Globalization;
using System.IO.Compression;
using SharpDiffusion.Loading.Pickle;
using static TorchSharp.torch;

namespace SharpDiffusion.Loading;

/// <summary>
/// A PyTorch checkpoint written by <c>torch.save</c> in its zip format (<c>.ckpt</c>, <c>.pt</c>, <c>.bin</c>, <c>.pth</c>):
/// <c>&lt;archive&gt;/data.pkl</c> (the object graph, read by <see cref="RestrictedUnpickler"/>, which runs nothing from
/// the file), <c>&lt;archive&gt;/data/&lt;key&gt;</c> (each storage's raw little-endian bytes, read only when a tensor on
/// it is loaded) and <c>&lt;archive&gt;/version</c>. Nested dicts become dotted names; a top-level <c>state_dict</c>
/// contributes its keys as they are (<see cref="HasStateDict"/>). Strings and numbers beside the tensors
/// (an AUTOMATIC1111 embedding's <c>name</c> and <c>step</c>, a checkpoint's <c>epoch</c>) are in <see cref="Values"/>;
/// numpy and Lightning objects become inert placeholders and are left out.
/// </summary>
public sealed class TorchPickleFile : ITensorFile
{
    const long MaxPickleBytes = 1L << 30;
    const int MaxDepth = 64;

    readonly IStorages _storages;
    readonly Dictionary<string, TorchTensorRef> _tensors;

    public string Path { get; }
    public IReadOnlyList<TensorHeader> Headers { get; }

    /// <summary>True when the tensors came from a top-level <c>state_dict</c> dict (the CompVis/LDM checkpoint layout).</summary>
    public bool HasStateDict { get; }

    /// <summary>Strings, integers, floats and booleans of the pickle under their dotted names (tensors excluded).</summary>
    public IReadOnlyDictionary<string, object> Values { get; }

    TorchPickleFile(string path, IStorages storages, Dictionary<string, TorchTensorRef> tensors,
        List<TensorHeader> headers, bool hasStateDict, Dictionary<string, object> values)
    {
        Path = path;
        _storages = storages;
        _tensors = tensors;
        Headers = headers;
        HasStateDict = hasStateDict;
        Values = values;
    }

    static InvalidDataException Corrupt(string path, string what) =>
        new($"Corrupt PyTorch checkpoint {path}: {string.Concat(what.Select(c => char.IsControl(c) ? ' ' : c))}. Re-download or re-save the file.");

    /// <summary>Where each storage's raw bytes are: its byte length (-1 when absent) and a stream of them.</summary>
    interface IStorages : IDisposable
    {
        long Length(string key);
        Stream Open(string key);
    }

    sealed class ZipStorages(ZipArchive zip, string folder) : IStorages
    {
        public long Length(string key) => zip.GetEntry(folder + key)?.Length ?? -1;
        public Stream Open(string key) => zip.GetEntry(folder + key)!.Open();
        public void Dispose() => zip.Dispose();
    }

    /// <summary>The legacy format: after the pickles, each storage as an int64 element count and its bytes.</summary>
    sealed class LegacyStorages(string path, Dictionary<string, (long Offset, long Length)> ranges) : IStorages
    {
        public long Length(string key) => ranges.TryGetValue(key, out var r) ? r.Length : -1;

        public Stream Open(string key)
        {
            var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            stream.Position = ranges[key].Offset;
            return stream;
        }

        public void Dispose() { }
    }

    public static TorchPickleFile Open(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"PyTorch checkpoint not found: {path}", path);
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        try
        {
            Span<byte> magic = stackalloc byte[2];
            int got = stream.ReadAtLeast(magic, 2, throwOnEndOfStream: false);
            stream.Position = 0;
            if (got == 2 && magic[0] == 0x80)
            {
                using (stream)
                    return ReadLegacy(path, stream);
            }
            if (got < 2 || magic[0] != (byte)'P' || magic[1] != (byte)'K')
                throw Corrupt(path, "neither a zip archive nor a pickle, so not a torch.save checkpoint (truncated, or another format?)");

            ZipArchive zip;
            try { zip = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: false); }
            catch (Exception e) when (e is InvalidDataException or IOException or ArgumentException or NotSupportedException)
            {
                throw Corrupt(path, $"the zip archive is unreadable ({e.Message}; truncated?)");
            }
            try
            {
                return ReadZip(path, zip);
            }
            catch
            {
                zip.Dispose();
                throw;
            }
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    static TorchPickleFile ReadZip(string path, ZipArchive zip)
    {
        // The archive folder is the name the file was saved under (or "archive"): find data.pkl rather than guess it.
        var pickles = zip.Entries.Where(e => e.FullName == "data.pkl" || e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal)).ToList();
        if (pickles.Count != 1)
            throw Corrupt(path, pickles.Count == 0 ? "the archive has no data.pkl (not a torch.save checkpoint)" : "the archive has several data.pkl");
        var pickleEntry = pickles[0];
        string prefix = pickleEntry.FullName[..^"data.pkl".Length];
        if (pickleEntry.Length > MaxPickleBytes)
            throw Corrupt(path, $"data.pkl claims {pickleEntry.Length} bytes");

        byte[] pickle = new byte[pickleEntry.Length];
        try
        {
            using var s = pickleEntry.Open();
            s.ReadExactly(pickle);
        }
        catch (Exception e) when (e is InvalidDataException or IOException or NotSupportedException)
        {
            throw Corrupt(path, $"data.pkl cannot be read ({e.Message})");
        }
        return FromRoot(path, RestrictedUnpickler.Load(pickle, path), new ZipStorages(zip, prefix + "data/"));
    }

    /// <summary>torch.save before 1.6 (<c>_use_new_zipfile_serialization=False</c>): five pickles in a row (magic
    /// number, protocol 1001, sys_info, the object, the storage keys), then the storages in key order, each an int64
    /// element count and the little-endian bytes.</summary>
    static TorchPickleFile ReadLegacy(string path, FileStream stream)
    {
        long fileLength = stream.Length;
        for (long size = Math.Min(fileLength, 1L << 20); ; size = Math.Min(fileLength, size * 4))
        {
            if (size > MaxPickleBytes)
                throw Corrupt(path, "the pickles before the storages are larger than 1 GiB");
            var head = new byte[size];
            stream.Position = 0;
            stream.ReadExactly(head);
            bool partial = size < fileLength;
            try
            {
                object? magic = RestrictedUnpickler.Load(head, 0, path, partial, out int at);
                if (!(magic is System.Numerics.BigInteger m && m == System.Numerics.BigInteger.Parse("119547037146038801333356")))
                    throw Corrupt(path, "a pickle that is not a torch.save checkpoint (no magic number)");
                if (RestrictedUnpickler.Load(head, at, path, partial, out at) is not 1001L)
                    throw Corrupt(path, "an unknown legacy protocol version");
                if (RestrictedUnpickler.Load(head, at, path, partial, out at) is OrderedDictionary<object, object?> info
                    && info.TryGetValue("little_endian", out var little) && little is false)
                    throw new NotSupportedException($"{path} was saved on a big-endian machine, which is not supported; re-save it as .safetensors.");
                object? root = RestrictedUnpickler.Load(head, at, path, partial, out at);
                if (RestrictedUnpickler.Load(head, at, path, partial, out at) is not List<object?> keys || keys.Any(k => k is not string))
                    throw Corrupt(path, "the storage key list is missing");

                var types = new Dictionary<string, TorchStorageType>();
                CollectStorages(root, types, 0);
                var ranges = new Dictionary<string, (long, long)>();
                var count = new byte[8];
                long offset = at;
                foreach (string key in keys.Cast<string>())
                {
                    if (!types.TryGetValue(key, out var type))
                        throw Corrupt(path, $"storage {key} is listed but no tensor names its type");
                    if (offset + 8 > fileLength)
                        throw Corrupt(path, $"the file ends before storage {key} (truncated?)");
                    stream.Position = offset;
                    stream.ReadExactly(count);
                    long elements = BitConverter.ToInt64(count);
                    if (elements < 0 || elements > (fileLength - offset - 8) / type.ElementSize)
                        throw Corrupt(path, $"storage {key} claims {elements} elements but the file ends first (truncated?)");
                    ranges[key] = (offset + 8, elements * type.ElementSize);
                    offset += 8 + elements * type.ElementSize;
                }
                return FromRoot(path, root, new LegacyStorages(path, ranges));
            }
            catch (RestrictedUnpickler.NeedMoreDataException) when (partial)
            {
            }
        }
    }

    /// <summary>Every storage the object graph names, with its type (the legacy format needs the element sizes to
    /// find where each storage starts).</summary>
    static void CollectStorages(object? node, Dictionary<string, TorchStorageType> types, int depth)
    {
        if (depth > MaxDepth) return;
        switch (node)
        {
            case TorchTensorRef t: types[t.Storage.Key] = t.Storage.Type; break;
            case OrderedDictionary<object, object?> d: foreach (var v in d.Values) CollectStorages(v, types, depth + 1); break;
            case List<object?> l: foreach (var v in l) CollectStorages(v, types, depth + 1); break;
            case object?[] a: foreach (var v in a) CollectStorages(v, types, depth + 1); break;
        }
    }

    static TorchPickleFile FromRoot(string path, object? root, IStorages storages)
    {
        if (root is not OrderedDictionary<object, object?> top)
            throw Corrupt(path, "the pickle does not hold a dict of tensors");

        var tensors = new Dictionary<string, TorchTensorRef>(StringComparer.Ordinal);
        var headers = new List<TensorHeader>();
        var values = new Dictionary<string, object>(StringComparer.Ordinal);
        bool hasStateDict = top.TryGetValue("state_dict", out var sd) && sd is OrderedDictionary<object, object?>;
        if (hasStateDict)
        {
            Flatten(path, (OrderedDictionary<object, object?>)sd!, "", tensors, headers, values, 0);
            // Beside state_dict: only the scalars (global_step, epoch ...); optimizer states and the like are not weights.
            var rest = new Dictionary<string, TorchTensorRef>();
            foreach (var (key, value) in top)
                if (!Equals(key, "state_dict"))
                    Flatten(path, new OrderedDictionary<object, object?> { [key] = value }, "", rest, [], values, 0);
        }
        else
            Flatten(path, top, "", tensors, headers, values, 0);

        foreach (var (name, t) in tensors)
            RequireStorageHolds(path, storages, name, t);
        return new TorchPickleFile(path, storages, tensors, headers, hasStateDict, values);
    }

    static void Flatten(string path, OrderedDictionary<object, object?> dict, string prefix, Dictionary<string, TorchTensorRef> tensors,
        List<TensorHeader> headers, Dictionary<string, object> values, int depth)
    {
        if (depth > MaxDepth)
            throw Corrupt(path, $"dicts nested more than {MaxDepth} deep");
        foreach (var (key, value) in dict)
        {
            string name = prefix + key switch
            {
                string s => s,
                long n => n.ToString(CultureInfo.InvariantCulture),
                _ => null,
            };
            if (name == prefix && key is not "")
                continue;   // a tuple or object key names no tensor
            switch (value)
            {
                case TorchTensorRef t:
                    if (!tensors.TryAdd(name, t))
                        throw Corrupt(path, $"tensor '{name}' appears twice");
                    headers.Add(new TensorHeader(name, t.Shape));
                    break;
                case OrderedDictionary<object, object?> inner:
                    Flatten(path, inner, name + ".", tensors, headers, values, depth + 1);
                    break;
                case string or long or double or bool or System.Numerics.BigInteger:
                    values[name] = value;
                    break;
            }
        }
    }

    /// <summary>A view's last element must lie inside its storage, and the storage file must hold it: checked from
    /// the zip directory before anything is read, so a wrong shape is refused instead of allocated.</summary>
    static void RequireStorageHolds(string path, IStorages storages, string name, TorchTensorRef t)
    {
        long count = 1, lastIndex = t.Offset;
        foreach (var (size, stride) in t.Shape.Zip(t.Stride))
        {
            if (size == 0) { count = 0; break; }
            if (count > long.MaxValue / size || (size - 1) > 0 && stride > (long.MaxValue - lastIndex) / (size - 1))
                throw Corrupt(path, $"tensor '{name}' has an impossible shape [{string.Join(", ", t.Shape)}]");
            count *= size;
            lastIndex += (size - 1) * stride;
        }
        if (count == 0)
            return;
        // Only an expanded (stride 0) view could have more elements than its storage: none in a state dict, and
        // refusing it bounds what a file can make us allocate by what it holds.
        long elementSize = t.Storage.Type.ElementSize;
        if (lastIndex >= t.Storage.ElementCount)
            throw Corrupt(path, $"tensor '{name}' of shape [{string.Join(", ", t.Shape)}] reaches element {lastIndex} of storage {t.Storage.Key}, which has {t.Storage.ElementCount}");
        long length = storages.Length(t.Storage.Key);
        if (length < 0)
            throw Corrupt(path, $"storage {t.Storage.Key} of tensor '{name}' is missing from the file");
        if (lastIndex >= length / elementSize)
            throw Corrupt(path, $"storage {t.Storage.Key} holds {length} bytes but tensor '{name}' needs {lastIndex + 1} elements of {elementSize} bytes (truncated?)");
        // Only an expanded (stride 0) view could have more elements than its storage holds: none in a state dict,
        // and refusing it bounds what a file can make us allocate by what it holds.
        if (count > length / elementSize)
            throw Corrupt(path, $"tensor '{name}' of shape [{string.Join(", ", t.Shape)}] has more elements than its storage {t.Storage.Key} holds");
    }

    public bool Contains(string name) => _tensors.ContainsKey(name);

    /// <summary>Reads the storage bytes the view spans and copies the view out contiguously, so tensors sharing
    /// one storage each get their own data.</summary>
    public Tensor Load(string name)
    {
        if (!_tensors.TryGetValue(name, out var t))
            throw new KeyNotFoundException($"Tensor '{name}' is not in {Path}");
        var type = t.Storage.Type;
        long count = t.Shape.Aggregate(1L, (a, b) => a * b);
        if (count == 0)
            return empty(t.Shape, type.DType);

        long first = t.Offset, last = t.Offset + t.Shape.Zip(t.Stride).Sum(p => (p.First - 1) * p.Second);
        long spanElements = last - first + 1, byteLength = spanElements * type.ElementSize;
        if (byteLength > int.MaxValue)
            throw new NotSupportedException($"Tensor '{name}' of {byteLength} bytes in {Path} is larger than 2 GiB");

        var bytes = new byte[byteLength];
        try
        {
            using var s = _storages.Open(t.Storage.Key);
            Skip(s, first * type.ElementSize);
            s.ReadExactly(bytes);
        }
        catch (Exception e) when (e is InvalidDataException or IOException or NotSupportedException)
        {
            throw Corrupt(Path, $"storage {t.Storage.Key} of tensor '{name}' cannot be read ({e.Message})");
        }

        using var span = empty([spanElements], type.DType);
        span.bytes = bytes;
        if (spanElements == count && IsContiguous(t.Shape, t.Stride))
        {
            using var reshaped = span.reshape(t.Shape);
            return reshaped.clone();
        }
        using var view = span.as_strided(t.Shape, t.Stride, 0);
        var result = empty(t.Shape, type.DType);
        result.copy_(view);
        return result;
    }

    static bool IsContiguous(long[] shape, long[] stride)
    {
        long expected = 1;
        for (int i = shape.Length - 1; i >= 0; i--)
        {
            if (shape[i] != 1 && stride[i] != expected) return false;
            expected *= shape[i];
        }
        return true;
    }

    static void Skip(Stream s, long bytes)
    {
        if (bytes == 0) return;
        if (s.CanSeek) { s.Seek(bytes, SeekOrigin.Current); return; }
        var buffer = new byte[Math.Min(bytes, 1 << 20)];
        while (bytes > 0)
        {
            int n = s.Read(buffer, 0, (int)Math.Min(buffer.Length, bytes));
            if (n == 0) throw new EndOfStreamException("the storage ends before the tensor's offset");
            bytes -= n;
        }
    }

    public void Dispose() => _storages.Dispose();
}
