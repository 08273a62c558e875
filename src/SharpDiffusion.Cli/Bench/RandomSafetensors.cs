using System.Text;
using System.Text.Json;
using SharpDiffusion.Models;
using static TorchSharp.torch;

namespace SharpDiffusion.Cli.Bench;

/// <summary>
/// A module's parameters written as a safetensors file of random values without ever holding the module's weights: the
/// module is built on the meta device (shapes only) and each tensor is drawn and written in chunks, so a 4.7 B-parameter
/// T5-XXL costs tens of MB of memory, not 19 GB. Values: norm scales (1-D *.weight) 1, biases 0, the rest N(0, 0.02²),
/// so activations keep the scale of a trained model's and the timings are those of real weights. The normal values are
/// drawn once, a pool of a prime number of them, and each tensor is a run of the pool from a random start: drawing 8 B
/// values one by one would cost minutes of CPU for nothing a benchmark can see (a prime period keeps rows from repeating).
/// </summary>
public static class RandomSafetensors
{
    const long PoolElements = 16_777_259; // the first prime above 2²⁴

    static readonly Device Meta = new("meta");

    /// <summary>Builds the module of <paramref name="build"/> on the meta device and writes its parameters to <paramref name="path"/>.</summary>
    /// <returns>the number of parameters written.</returns>
    public static long Write(string path, Func<nn.Module> build, ScalarType dtype)
    {
        List<(string Name, long[] Shape)> tensors;
        using (Layers.Placement(Meta))
        using (var module = build())
            tensors = module.named_parameters().Select(p => (p.name, p.parameter.shape)).OrderBy(t => t.name, StringComparer.Ordinal).ToList();
        Write(path, tensors, dtype);
        return tensors.Sum(t => t.Shape.Aggregate(1L, (a, b) => a * b));
    }

    /// <summary>Random tensors of the given names and shapes (keys sorted, 8-byte aligned header), to a temporary file
    /// renamed into place at the end, so an interrupted write leaves no file that looks complete.</summary>
    public static void Write(string path, IReadOnlyList<(string Name, long[] Shape)> tensors, ScalarType dtype)
    {
        string code = dtype switch
        {
            ScalarType.BFloat16 => "BF16", ScalarType.Float16 => "F16", ScalarType.Float32 => "F32",
            _ => throw new ArgumentException($"RandomSafetensors writes bfloat16, float16 or float32, not {dtype}."),
        };
        int size = dtype == ScalarType.Float32 ? 4 : 2;
        var header = new Dictionary<string, object>();
        long offset = 0;
        foreach (var (name, shape) in tensors)
        {
            long length = shape.Aggregate(1L, (a, b) => a * b) * size;
            header[name] = new { dtype = code, shape, data_offsets = new[] { offset, offset + length } };
            offset += length;
        }
        var json = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(header));
        var padded = new byte[(json.Length + 7) / 8 * 8];
        Array.Fill(padded, (byte)' ');
        json.CopyTo(padded, 0);

        string temp = path + ".tmp";
        byte[] pool, one, zero;
        using (NewDisposeScope())
        {
            manual_seed(0);
            pool = randn(PoolElements).mul_(0.02).to(dtype).bytes.ToArray();
            (one, zero) = (ones(1).to(dtype).bytes.ToArray(), zeros(1).to(dtype).bytes.ToArray());
        }
        var random = new Random(0);
        try
        {
            using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            {
                stream.Write(BitConverter.GetBytes((ulong)padded.Length));
                stream.Write(padded);
                var constant = new byte[1 << 20];
                foreach (var (name, shape) in tensors)
                {
                    long bytes = shape.Aggregate(1L, (a, b) => a * b) * size;
                    byte[]? value = shape.Length == 1 && name.EndsWith(".weight", StringComparison.Ordinal) ? one
                        : name.EndsWith(".bias", StringComparison.Ordinal) ? zero : null;
                    if (value is not null)
                    {
                        for (int i = 0; i < constant.Length; i++) constant[i] = value[i % size];
                        for (long done = 0; done < bytes; done += constant.Length)
                            stream.Write(constant, 0, (int)Math.Min(constant.Length, bytes - done));
                        continue;
                    }
                    int at = random.Next((int)PoolElements) * size;
                    for (long done = 0; done < bytes;)
                    {
                        int n = (int)Math.Min(pool.Length - at, bytes - done);
                        stream.Write(pool, at, n);
                        (done, at) = (done + n, 0);
                    }
                }
            }
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }
}
