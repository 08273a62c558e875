using System.Text;

namespace SharpDiffusion.Tests.Loading;

/// <summary>Writes small GGUF v3 files for tests (ggml's docs/gguf.md): metadata of any value type, tensors given as
/// their ggml type id, dimensions fastest-first and stored bytes, data aligned to 32.</summary>
public sealed class GgufTestWriter
{
    const int Alignment = 32;
    readonly List<(string Key, uint Type, Action<BinaryWriter> Write)> _metadata = [];
    readonly List<(string Name, uint Type, ulong[] Dims, byte[] Data)> _tensors = [];

    /// <summary>Overrides the header's tensor count (a bogus one for tests), or null for the real count.</summary>
    public ulong? TensorCountOverride { get; set; }

    public GgufTestWriter Metadata(string key, uint valueType, Action<BinaryWriter> writeValue)
    {
        _metadata.Add((key, valueType, writeValue));
        return this;
    }

    public GgufTestWriter String(string key, string value) => Metadata(key, 8, w => WriteString(w, value));

    public GgufTestWriter Tensor(string name, uint type, ulong[] dimsFastestFirst, byte[] data)
    {
        _tensors.Add((name, type, dimsFastestFirst, data));
        return this;
    }

    public static void WriteString(BinaryWriter w, string s)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    public byte[] ToBytes()
    {
        using var stream = new MemoryStream();
        using var w = new BinaryWriter(stream);
        w.Write("GGUF"u8);
        w.Write(3u);
        w.Write(TensorCountOverride ?? (ulong)_tensors.Count);
        w.Write((ulong)_metadata.Count);
        foreach (var (key, type, write) in _metadata)
        {
            WriteString(w, key);
            w.Write(type);
            write(w);
        }
        ulong offset = 0;
        foreach (var (name, type, dims, data) in _tensors)
        {
            WriteString(w, name);
            w.Write((uint)dims.Length);
            foreach (var d in dims) w.Write(d);
            w.Write(type);
            w.Write(offset);
            offset += (ulong)((data.Length + Alignment - 1) / Alignment * Alignment);
        }
        Pad(w);
        foreach (var (_, _, _, data) in _tensors)
        {
            w.Write(data);
            Pad(w);
        }
        w.Flush();
        return stream.ToArray();
    }

    static void Pad(BinaryWriter w)
    {
        while (w.BaseStream.Position % Alignment != 0) w.Write((byte)0);
    }
}
