using System.Text;
using System.Text.Json;
using SharpDiffusion.Models;
using static TorchSharp.torch;

namespace SharpDiffusion.Cli.Bench;

/// <summary>
/// A module's parameters written as a safetensors file of random values without ever holding the module's weights: the
/// module is built on the meta device (shapes only) and each tensor is drawn and written in chunks, so a 4.7 B-parameter
/// T5-XXL costs tens of MB of memory, not 19 GB. Values: norm scales (1-D *.weight) 1, biases 0, the rest N(0, 0.02²),
/// so activations keep the scale of a trained model's and the timings are those of real weights.
/// </summary>
public static class RandomSafetensors
{
    const long ChunkElements = 1 << 24; // 64 MB of float32 at a time

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
        try
        {
            using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            {
                stream.Write(BitConverter.GetBytes((ulong)padded.Length));
                stream.Write(padded);
                foreach (var (name, shape) in tensors)
                {
                    long count = shape.Aggregate(1L, (a, b) => a * b);
                    for (long done = 0; done < count; done += ChunkElements)
                    {
                        using var scope = NewDisposeScope();
                        long n = Math.Min(ChunkElements, count - done);
                        var values = shape.Length == 1 && name.EndsWith(".weight", StringComparison.Ordinal) ? ones(n)
                            : name.EndsWith(".bias", StringComparison.Ordinal) ? zeros(n)
                            : randn(n).mul_(0.02);
                        stream.Write(values.to(dtype).bytes);
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
