using System.Text;
using System.Text.Json;
using static TorchSharp.torch;

namespace SharpDiffusion.Loading;

/// <summary>Writes tensors as a safetensors file (keys sorted, 8-byte aligned header), atomically.</summary>
public static class SafetensorsWriter
{
    static readonly Dictionary<ScalarType, string> Names = new()
    {
        [ScalarType.Float64] = "F64", [ScalarType.Float32] = "F32", [ScalarType.Float16] = "F16", [ScalarType.BFloat16] = "BF16",
        [ScalarType.Int64] = "I64", [ScalarType.Int32] = "I32", [ScalarType.Int16] = "I16", [ScalarType.Int8] = "I8",
        [ScalarType.Byte] = "U8", [ScalarType.Bool] = "BOOL",
    };

    public static void Save(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var ordered = tensors.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList();
        var header = new Dictionary<string, object>();
        if (metadata is { Count: > 0 }) header["__metadata__"] = metadata;
        long offset = 0;
        var blobs = new List<byte[]>();
        foreach (var (name, t) in ordered)
        {
            if (!Names.TryGetValue(t.dtype, out var dtype))
                throw new NotSupportedException($"Cannot write tensor '{name}' of dtype {t.dtype}");
            using var cpu = t.detach().cpu().contiguous();
            var bytes = cpu.bytes.ToArray();
            header[name] = new { dtype, shape = t.shape, data_offsets = new[] { offset, offset + bytes.Length } };
            offset += bytes.Length;
            blobs.Add(bytes);
        }
        var json = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(header));
        int padded = (json.Length + 7) / 8 * 8;
        var headerBytes = new byte[padded];
        Array.Fill(headerBytes, (byte)' ');
        json.CopyTo(headerBytes, 0);

        string temp = path + ".tmp";
        using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write))
        {
            stream.Write(BitConverter.GetBytes((ulong)padded));
            stream.Write(headerBytes);
            foreach (var blob in blobs) stream.Write(blob);
        }
        File.Move(temp, path, overwrite: true);
    }
}
