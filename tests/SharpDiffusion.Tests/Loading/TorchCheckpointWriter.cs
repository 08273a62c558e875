using System.IO.Compression;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Loading;

/// <summary>Pickle opcodes written by hand, for checkpoints the tests need (torch is not installed here).</summary>
public sealed class PickleBuilder
{
    readonly MemoryStream _bytes = new();

    public PickleBuilder Op(byte op) { _bytes.WriteByte(op); return this; }
    public PickleBuilder Op(char op) => Op((byte)op);
    public PickleBuilder Proto(int version) => Op(0x80).Op((byte)version);
    public PickleBuilder Mark() => Op('(');
    public PickleBuilder EmptyDict() => Op('}');
    public PickleBuilder Tuple() => Op('t');
    public PickleBuilder Stop() => Op('.');

    public PickleBuilder Global(string module, string name)
    {
        Op('c');
        _bytes.Write(Encoding.ASCII.GetBytes($"{module}\n{name}\n"));
        return this;
    }

    public PickleBuilder String(string s)
    {
        var utf8 = Encoding.UTF8.GetBytes(s);
        Op('X');
        _bytes.Write(BitConverter.GetBytes(utf8.Length));
        _bytes.Write(utf8);
        return this;
    }

    public PickleBuilder Int(long v)
    {
        Op('J');   // BININT: 4-byte signed, enough for test sizes
        _bytes.Write(BitConverter.GetBytes(checked((int)v)));
        return this;
    }

    public PickleBuilder Ints(IEnumerable<long> values)
    {
        Mark();
        foreach (long v in values) Int(v);
        return Tuple();
    }

    /// <summary>torch._utils._rebuild_tensor_v2(persistent_load(('storage', torch.XStorage, key, 'cpu', numel)),
    /// offset, size, stride, False, OrderedDict()), as torch.save writes it.</summary>
    public PickleBuilder Tensor(string storageType, string key, long numel, long offset, long[] shape, long[] stride, bool legacy = false)
    {
        Global("torch._utils", "_rebuild_tensor_v2").Mark();
        Mark().String("storage").Global("torch", storageType).String(key).String("cpu").Int(numel);
        if (legacy) Op('N');   // view_metadata
        Tuple().Op('Q');
        Int(offset).Ints(shape).Ints(stride).Op(0x89);
        Global("collections", "OrderedDict").Op(')').Op('R');
        return Tuple().Op('R');
    }

    /// <summary>LONG1: a little-endian two's-complement integer of up to 255 bytes.</summary>
    public PickleBuilder Long1(System.Numerics.BigInteger value)
    {
        var bytes = value.ToByteArray();
        Op(0x8a).Op((byte)bytes.Length);
        _bytes.Write(bytes);
        return this;
    }

    public byte[] ToArray() => _bytes.ToArray();
}

/// <summary>Writes torch.save's zip format: <c>{archive}/data.pkl</c>, <c>{archive}/data/{key}</c>, <c>{archive}/version</c>.</summary>
public static class TorchCheckpointWriter
{
    public static readonly Dictionary<ScalarType, string> StorageTypes = new()
    {
        [ScalarType.Float32] = "FloatStorage", [ScalarType.Float16] = "HalfStorage", [ScalarType.BFloat16] = "BFloat16Storage",
        [ScalarType.Float64] = "DoubleStorage", [ScalarType.Int64] = "LongStorage", [ScalarType.Int32] = "IntStorage",
        [ScalarType.Byte] = "ByteStorage", [ScalarType.Bool] = "BoolStorage",
    };

    /// <summary>A dict of tensors (inside <c>{"state_dict": ...}</c> when asked), one storage per tensor.</summary>
    public static void Write(string path, IEnumerable<(string Name, Tensor Tensor)> tensors, bool inStateDict = false, string archive = "archive")
    {
        var pickle = new PickleBuilder().Proto(2).EmptyDict();
        if (inStateDict) pickle.String("state_dict").EmptyDict();
        pickle.Mark();
        var storages = new List<byte[]>();
        foreach (var (name, tensor) in tensors)
        {
            using var contiguous = tensor.contiguous();
            string key = storages.Count.ToString();
            long[] shape = tensor.shape;
            var stride = new long[shape.Length];
            for (long i = shape.Length - 1, s = 1; i >= 0; s *= shape[i], i--) stride[i] = s;
            pickle.String(name).Tensor(StorageTypes[tensor.dtype], key, tensor.numel(), 0, shape, stride);
            storages.Add(contiguous.bytes.ToArray());
        }
        pickle.Op('u');
        if (inStateDict) pickle.Op('s');
        WriteArchive(path, pickle.Stop().ToArray(), storages.Select((b, i) => (i.ToString(), b)), archive);
    }

    /// <summary>The legacy format (torch.save(..., _use_new_zipfile_serialization=False)): magic number, protocol
    /// version, sys_info, the dict, the storage keys, then each storage as an int64 element count and its bytes.</summary>
    public static void WriteLegacy(string path, IEnumerable<(string Name, Tensor Tensor)> tensors)
    {
        var main = new PickleBuilder().Proto(2).EmptyDict().Mark();
        var storages = new List<(Tensor Tensor, byte[] Bytes)>();
        foreach (var (name, tensor) in tensors)
        {
            using var contiguous = tensor.contiguous();
            long[] shape = tensor.shape;
            var stride = new long[shape.Length];
            for (long i = shape.Length - 1, s = 1; i >= 0; s *= shape[i], i--) stride[i] = s;
            main.String(name).Tensor(StorageTypes[tensor.dtype], storages.Count.ToString(), tensor.numel(), 0, shape, stride, legacy: true);
            storages.Add((tensor, contiguous.bytes.ToArray()));
        }
        var keys = new PickleBuilder().Proto(2).Op(']').Mark();
        for (int i = 0; i < storages.Count; i++) keys.String(i.ToString());
        using var file = File.Create(path);
        file.Write(new PickleBuilder().Proto(2).Long1(System.Numerics.BigInteger.Parse("119547037146038801333356")).Stop().ToArray());
        file.Write(new PickleBuilder().Proto(2).Int(1001).Stop().ToArray());
        file.Write(new PickleBuilder().Proto(2).EmptyDict().String("protocol_version").Int(1001).Op('s')
            .String("little_endian").Op(0x88).Op('s').Stop().ToArray());
        file.Write(main.Op('u').Stop().ToArray());
        file.Write(keys.Op('e').Stop().ToArray());
        foreach (var (tensor, bytes) in storages)
        {
            file.Write(BitConverter.GetBytes(tensor.numel()));
            file.Write(bytes);
        }
    }

    public static void WriteArchive(string path, byte[] dataPkl, IEnumerable<(string Key, byte[] Bytes)> storages, string archive = "archive")
    {
        using var zip = new ZipArchive(File.Create(path), ZipArchiveMode.Create);
        void Add(string name, byte[] bytes)
        {
            using var s = zip.CreateEntry($"{archive}/{name}", CompressionLevel.NoCompression).Open();
            s.Write(bytes);
        }
        Add("data.pkl", dataPkl);
        foreach (var (key, bytes) in storages) Add($"data/{key}", bytes);
        Add("version", Encoding.ASCII.GetBytes("3\n"));
    }
}
