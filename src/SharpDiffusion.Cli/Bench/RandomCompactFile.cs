using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using SharpDiffusion.Loading;
using static TorchSharp.torch;

namespace SharpDiffusion.Cli.Bench;

/// <summary>The weight formats a Flux.1 download comes in, as `bench --weights` names them.</summary>
public enum BenchWeights { Bf16, Fp8, Q8_0, Q4_K }

/// <summary>
/// Random weights written straight in a file format, tensor by tensor, never holding a model: bfloat16 safetensors, a
/// float8 safetensors file (ComfyUI's flux1-dev-fp8: 2-D linear weights <c>F8_E4M3</c>, the rest bfloat16) or a GGUF
/// (city96's flux1-dev-Q8_0 / Q4_K_S: the weights the caller marks compact quantized, other 2-D weights BF16, 1-D tensors
/// F32 as city96's converter keeps them), so a 12 B-parameter transformer costs the file, not 24 GB of bfloat16 first.
/// Values as <see cref="RandomSafetensors"/> draws them (N(0, 0.02²), norm scales 1 — 1-D <c>*.weight</c> and BFL's
/// <c>*.scale</c> —, biases 0); float8 codes are each value's nearest e4m3 number, Q8_0 blocks are real quantizations of
/// the normal values (d = max|x|/127); Q4_K blocks are random codes under small scales (same work to dequantize; the values
/// are not a quantized normal). Each tensor is a run of a pool of encoded blocks from a random start, as RandomSafetensors
/// does with its values (float pools of a prime length, so rows do not repeat).
/// </summary>
public static class RandomCompactFile
{
    const int PoolValues = 1 << 20;       // per pool: 1 Mi values (a whole number of 256-value blocks)
    const int FloatPoolValues = 1_048_573; // float pools: the largest prime below 2²⁰
    const int Alignment = 32;             // GGUF's default general.alignment

    public static BenchWeights Parse(string name) => name.Trim().ToLowerInvariant() switch
    {
        "bf16" or "bfloat16" => BenchWeights.Bf16,
        "fp8" or "f8_e4m3" or "float8" => BenchWeights.Fp8,
        "q8_0" => BenchWeights.Q8_0,
        "q4_k" or "q4_k_s" => BenchWeights.Q4_K,
        _ => throw new UsageException($"--weights takes bf16, fp8, q8_0 or q4_k (comma-separated); got '{name}'."),
    };

    public static string Name(BenchWeights w) => w.ToString().ToLowerInvariant();

    public static string Extension(BenchWeights w) => w is BenchWeights.Q8_0 or BenchWeights.Q4_K ? ".gguf" : ".safetensors";

    /// <summary>Writes <paramref name="tensors"/> (torch names and shapes) to <paramref name="path"/> in <paramref name="format"/>;
    /// those <paramref name="compact"/> names (large 2-D linear weights) in the compact type where their rows allow it
    /// (Q4_K needs rows of 256, Q8_0 of 32; otherwise the next type that fits, as the GGUF converters do). A GGUF names
    /// <paramref name="architecture"/> (general.architecture).</summary>
    public static void Write(string path, IReadOnlyList<(string Name, long[] Shape)> tensors, Func<string, bool> compact, BenchWeights format,
        string architecture = "flux")
    {
        var pools = new Pools();
        var typed = tensors.Select(t => (t.Name, t.Shape, Type: TypeOf(t.Name, t.Shape, compact(t.Name), format))).ToList();
        string temp = path + ".tmp";
        try
        {
            using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            {
                if (Extension(format) == ".safetensors") WriteSafetensors(stream, typed, pools);
                else WriteGguf(stream, typed, pools, architecture, FileType(format));
            }
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    /// <summary>The stored type of one tensor: "F8_E4M3", a GgmlType name, or "BF16" ("F32" for a GGUF's 1-D tensors).</summary>
    static string TypeOf(string name, long[] shape, bool compact, BenchWeights format)
    {
        long row = shape.Length > 0 ? shape[^1] : 1;
        if (format == BenchWeights.Bf16) return "BF16";
        if (Extension(format) == ".gguf" && shape.Length < 2) return "F32";
        if (!compact || shape.Length != 2) return "BF16";
        return format switch
        {
            BenchWeights.Fp8 => "F8_E4M3",
            BenchWeights.Q4_K when row % 256 == 0 => "Q4_K",
            _ when row % 32 == 0 => "Q8_0",
            _ => "BF16",
        };
    }

    static long StoredBytes(string type, long[] shape)
    {
        long n = shape.Aggregate(1L, (a, b) => a * b);
        return type switch
        {
            "F8_E4M3" => n,
            "BF16" => 2 * n,
            "F32" => 4 * n,
            _ => n / GgufQuantization.BlockOf(Enum.Parse<GgmlType>(type)).Elements * GgufQuantization.BlockOf(Enum.Parse<GgmlType>(type)).Bytes,
        };
    }

    static void WriteSafetensors(Stream stream, List<(string Name, long[] Shape, string Type)> tensors, Pools pools)
    {
        var header = new Dictionary<string, object>();
        long offset = 0;
        foreach (var (name, shape, type) in tensors)
        {
            long length = StoredBytes(type, shape);
            header[name] = new { dtype = type, shape, data_offsets = new[] { offset, offset + length } };
            offset += length;
        }
        var json = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(header));
        var padded = new byte[(json.Length + 7) / 8 * 8];
        Array.Fill(padded, (byte)' ');
        json.CopyTo(padded, 0);
        stream.Write(BitConverter.GetBytes((ulong)padded.Length));
        stream.Write(padded);
        foreach (var (name, shape, type) in tensors) pools.Write(stream, name, shape, type, StoredBytes(type, shape));
    }

    /// <summary>llama.cpp's general.file_type of a quantized file (LLAMA_FTYPE_MOSTLY_Q8_0 = 7, _Q4_K_S = 14), as llama-quantize
    /// (city96's patched one) writes it.</summary>
    static uint FileType(BenchWeights format) => format == BenchWeights.Q4_K ? 14u : 7u;

    /// <summary>GGUF v3: magic, version, counts, the metadata city96's files carry (general.architecture,
    /// general.quantization_version 2, general.file_type), the tensor infos (dims fastest first), the data aligned to 32.</summary>
    static void WriteGguf(Stream stream, List<(string Name, long[] Shape, string Type)> tensors, Pools pools, string architecture, uint fileType)
    {
        var head = new MemoryStream();
        void U32(uint v) { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(b, v); head.Write(b); }
        void U64(ulong v) { Span<byte> b = stackalloc byte[8]; BinaryPrimitives.WriteUInt64LittleEndian(b, v); head.Write(b); }
        void Str(string s) { var b = Encoding.UTF8.GetBytes(s); U64((ulong)b.Length); head.Write(b); }
        head.Write("GGUF"u8);
        U32(3);
        U64((ulong)tensors.Count);
        U64(3);
        Str("general.architecture");
        U32(8); // string
        Str(architecture);
        Str("general.quantization_version");
        U32(4); // uint32
        U32(2); // GGML_QNT_VERSION
        Str("general.file_type");
        U32(4);
        U32(fileType);
        long offset = 0;
        foreach (var (name, shape, type) in tensors)
        {
            Str(name);
            U32((uint)shape.Length);
            foreach (long d in shape.Reverse()) U64((ulong)d);
            U32((uint)Enum.Parse<GgmlType>(type));
            U64((ulong)offset);
            offset += (StoredBytes(type, shape) + Alignment - 1) / Alignment * Alignment;
        }
        while (head.Length % Alignment != 0) head.WriteByte(0);
        head.Position = 0;
        head.CopyTo(stream);
        foreach (var (name, shape, type) in tensors)
        {
            long bytes = StoredBytes(type, shape);
            pools.Write(stream, name, shape, type, bytes);
            for (long pad = (bytes + Alignment - 1) / Alignment * Alignment - bytes; pad > 0; pad--) stream.WriteByte(0);
        }
    }

    /// <summary>Encoded blocks of each type, made once, and the writing of a tensor's bytes as a run of them.</summary>
    sealed class Pools
    {
        readonly Dictionary<string, (byte[] Bytes, int Block)> _pools = [];
        readonly float[] _normal;
        readonly Random _random = new(0);

        public Pools()
        {
            using var scope = NewDisposeScope();
            manual_seed(0);
            _normal = randn(PoolValues).mul_(0.02f).data<float>().ToArray();
        }

        public void Write(Stream stream, string name, long[] shape, string type, long bytes)
        {
            // Norm scales (1-D weights, BFL's *.scale) 1, biases 0, as RandomSafetensors; little-endian 1.0 in bfloat16 / float32.
            bool bias = name.EndsWith(".bias", StringComparison.Ordinal);
            bool scale = shape.Length == 1 && (name.EndsWith(".weight", StringComparison.Ordinal) || name.EndsWith(".scale", StringComparison.Ordinal));
            if (type is "BF16" or "F32" && (bias || scale))
            {
                byte[] value = (type, bias) switch { ("BF16", true) => [0, 0], ("BF16", false) => [0x80, 0x3F], (_, true) => [0, 0, 0, 0], _ => [0, 0, 0x80, 0x3F] };
                var run = new byte[1 << 16];
                for (int i = 0; i < run.Length; i++) run[i] = value[i % value.Length];
                for (long done = 0; done < bytes;)
                {
                    int n = (int)Math.Min(run.Length, bytes - done);
                    stream.Write(run, 0, n);
                    done += n;
                }
                return;
            }
            var (pool, block) = Pool(type);
            long at = _random.NextInt64(pool.Length / block) * block;
            for (long done = 0; done < bytes;)
            {
                int n = (int)Math.Min(pool.Length - at, bytes - done);
                stream.Write(pool, (int)at, n);
                done += n;
                at = 0;
            }
        }

        (byte[] Bytes, int Block) Pool(string type)
        {
            if (_pools.TryGetValue(type, out var pool)) return pool;
            pool = type switch
            {
                "BF16" => (Bf16(), 2),
                "F32" => (F32(), 4),
                "F8_E4M3" => (Float8Codes(), 1),
                "Q8_0" => (Q8_0(), 34),
                "Q4_K" => (Q4_K(), 144),
                _ => throw new ArgumentException($"RandomCompactFile: no pool for {type}"),
            };
            _pools[type] = pool;
            return pool;
        }

        /// <summary>bfloat16 of the normal values (truncated), a prime number of them.</summary>
        byte[] Bf16()
        {
            var bytes = new byte[2 * FloatPoolValues];
            for (int i = 0; i < FloatPoolValues; i++)
                BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(2 * i), (ushort)(BitConverter.SingleToUInt32Bits(_normal[i]) >> 16));
            return bytes;
        }

        byte[] F32()
        {
            var bytes = new byte[4 * FloatPoolValues];
            for (int i = 0; i < FloatPoolValues; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(4 * i), _normal[i]);
            return bytes;
        }

        /// <summary>Each value's nearest e4m3fn number (codes 0x00–0x7E rising; the sign bit on top).</summary>
        byte[] Float8Codes()
        {
            var positive = Loading.Float8.E4M3FnValues.Take(0x7F).ToArray();
            var codes = new byte[_normal.Length];
            for (int i = 0; i < codes.Length; i++)
            {
                float a = Math.Abs(_normal[i]);
                int k = Array.BinarySearch(positive, a);
                if (k < 0)
                {
                    k = ~k;
                    if (k >= positive.Length) k = positive.Length - 1;
                    else if (k > 0 && a - positive[k - 1] <= positive[k] - a) k--;
                }
                codes[i] = (byte)(k | (_normal[i] < 0 ? 0x80 : 0));
            }
            return codes;
        }

        /// <summary>Q8_0 of the normal values: per 32, d = max|x|/127 (float16), q = round(x/d).</summary>
        byte[] Q8_0()
        {
            int blocks = _normal.Length / 32;
            var bytes = new byte[blocks * 34];
            for (int b = 0; b < blocks; b++)
            {
                var x = _normal.AsSpan(32 * b, 32);
                float max = 0;
                foreach (float v in x) max = Math.Max(max, Math.Abs(v));
                var d = (Half)(max / 127);
                BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(34 * b), BitConverter.HalfToUInt16Bits(d));
                float inv = (float)d == 0 ? 0 : 1 / (float)d;
                for (int j = 0; j < 32; j++) bytes[34 * b + 2 + j] = (byte)(sbyte)Math.Clamp(MathF.Round(x[j] * inv), -127, 127);
            }
            return bytes;
        }

        /// <summary>Q4_K blocks of random scales and nibbles under d = dmin = 1e-4 (values within ±0.1).</summary>
        byte[] Q4_K()
        {
            int blocks = _normal.Length / 256;
            var bytes = new byte[blocks * 144];
            _random.NextBytes(bytes);
            ushort scale = BitConverter.HalfToUInt16Bits((Half)1e-4f);
            for (int b = 0; b < blocks; b++)
            {
                BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(144 * b), scale);
                BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(144 * b + 2), scale);
            }
            return bytes;
        }
    }
}
