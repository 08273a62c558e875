using System.Text;
using System.Text.Json;
using static TorchSharp.torch;

namespace SharpDiffusion.Loading;

/// <summary>Writes tensors as a safetensors file (keys sorted, 8-byte aligned header), streaming one tensor at
/// a time, to a temporary file that is renamed into place at the end.</summary>
public static class SafetensorsWriter
{
    static readonly Dictionary<ScalarType, (string Name, int Size)> DTypes = new()
    {
        [ScalarType.Float64] = ("F64", 8), [ScalarType.Float32] = ("F32", 4), [ScalarType.Float16] = ("F16", 2),
        [ScalarType.BFloat16] = ("BF16", 2), [ScalarType.Int64] = ("I64", 8), [ScalarType.Int32] = ("I32", 4),
        [ScalarType.Int16] = ("I16", 2), [ScalarType.Int8] = ("I8", 1), [ScalarType.Byte] = ("U8", 1), [ScalarType.Bool] = ("BOOL", 1),
    };

    public static void Save(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var ordered = tensors.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList();
        var header = new Dictionary<string, object>();
        if (metadata is { Count: > 0 }) header["__metadata__"] = metadata;
        long offset = 0;
        foreach (var (name, t) in ordered)
        {
            if (!DTypes.TryGetValue(t.dtype, out var info))
                throw new NotSupportedException($"Cannot write tensor '{name}' of dtype {t.dtype}");
            long length = t.numel() * info.Size;
            header[name] = new { dtype = info.Name, shape = t.shape, data_offsets = new[] { offset, offset + length } };
            offset += length;
        }
        var json = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(header));
        int padded = (json.Length + 7) / 8 * 8;
        var headerBytes = new byte[padded];
        Array.Fill(headerBytes, (byte)' ');
        json.CopyTo(headerBytes, 0);

        string temp = path + ".tmp";
        try
        {
            using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write))
            {
                stream.Write(BitConverter.GetBytes((ulong)padded));
                stream.Write(headerBytes);
                foreach (var (_, t) in ordered)
                {
                    using var cpu = t.detach().cpu().contiguous();
                    stream.Write(cpu.bytes);
                }
            }
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    /// <summary>A module's parameters and buffers by state-dict name, optionally cast (e.g. to float16); compact weights
    /// (<see cref="Models.Linear"/>) written as the values they stand for.</summary>
    public static void SaveModule(string path, nn.Module module, ScalarType? dtype = null, IReadOnlyDictionary<string, string>? metadata = null)
    {
        using var scope = NewDisposeScope();
        var tensors = new Dictionary<string, Tensor>();
        var compact = module.named_modules().DistinctBy(m => m.name).Where(m => m.module is Models.Linear { IsCompact: true })
            .ToDictionary(m => m.name.Length == 0 ? "weight" : m.name + ".weight", m => (Models.Linear)m.module, StringComparer.Ordinal);
        foreach (var (name, p) in module.named_parameters())
        {
            var value = compact.TryGetValue(name, out var layer) ? layer.DequantizedWeight() : p.detach();
            tensors[name] = dtype is { } d ? value.to(d) : value;
        }
        foreach (var (name, b) in module.named_buffers()) tensors[name] = dtype is { } d ? b.detach().to(d) : b.detach();
        Save(path, tensors, metadata);
    }
}
