using System.Text;
using SharpDiffusion.Loading;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Loading;

/// <summary>Malformed files must give an error naming the file, never a crash, hang or huge allocation.</summary>
public class SafetensorsFileTests
{
    static byte[] Build(string header, int dataBytes)
    {
        var h = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + h.Length + dataBytes];
        BitConverter.GetBytes((ulong)h.Length).CopyTo(bytes, 0);
        h.CopyTo(bytes, 8);
        return bytes;
    }

    static InvalidDataException OpenFails(TempDir dir, byte[] bytes)
    {
        string path = dir.File("bad.safetensors");
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<InvalidDataException>(() => SafetensorsFile.Open(path).Dispose());
        Assert.Contains(path, e.Message);
        return e;
    }

    [Fact]
    public void Reads_golden_tensors_with_their_dtypes()
    {
        using var file = SafetensorsFile.Open(Golden.Path("text_encoder", "tiny-sd.safetensors"));
        Assert.Equal("I64", file.Tensors["input_ids"].DType);
        using var ids = file.Load("input_ids");
        Assert.Equal(ScalarType.Int64, ids.dtype);
        Assert.Equal(file.Tensors["input_ids"].Shape, ids.shape);
    }

    [Fact]
    public void Truncated_file_is_reported()
    {
        using var dir = new TempDir();
        var good = File.ReadAllBytes(Golden.Path("text_encoder", "tiny-sd.safetensors"));
        OpenFails(dir, good[..(good.Length / 2)]);
    }

    [Fact]
    public void Header_length_beyond_the_file_is_reported()
    {
        using var dir = new TempDir();
        var bytes = new byte[16];
        BitConverter.GetBytes(ulong.MaxValue / 2).CopyTo(bytes, 0);
        OpenFails(dir, bytes);
    }

    [Fact]
    public void Offsets_outside_the_data_are_reported()
    {
        using var dir = new TempDir();
        var e = OpenFails(dir, Build("""{"w":{"dtype":"F32","shape":[1000000000],"data_offsets":[0,4000000000]}}""", 16));
        Assert.Contains("'w'", e.Message);
    }

    [Fact]
    public void Shape_that_disagrees_with_offsets_is_reported()
    {
        using var dir = new TempDir();
        OpenFails(dir, Build("""{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,8]}}""", 8));
    }

    [Fact]
    public void Header_that_is_not_json_is_reported()
    {
        using var dir = new TempDir();
        OpenFails(dir, Build("not json at all", 0));
    }

    [Fact]
    public void Unknown_dtype_is_reported()
    {
        using var dir = new TempDir();
        OpenFails(dir, Build("""{"w":{"dtype":"F8_E9","shape":[1],"data_offsets":[0,1]}}""", 1));
    }

    [Fact]
    public void Missing_file_is_reported()
    {
        Assert.Throws<FileNotFoundException>(() => SafetensorsFile.Open("/nonexistent/model.safetensors"));
    }

    [Fact]
    public void Fp16_and_bf16_files_load_into_float32_models()
    {
        using var dir = new TempDir();
        foreach (var (dtype, name) in new[] { (ScalarType.Float16, "F16"), (ScalarType.BFloat16, "BF16") })
        {
            using var source = tensor(new float[] { 1.5f, -2.25f, 3.0f });
            using var converted = source.to(dtype);
            var data = converted.bytes.ToArray();
            var bytes = Build($$$"""{"weight":{"dtype":"{{{name}}}","shape":[3],"data_offsets":[0,{{{data.Length}}}]}}""", data.Length);
            data.CopyTo(bytes, bytes.Length - data.Length);
            string path = dir.File($"{name}.safetensors");
            File.WriteAllBytes(path, bytes);
            using var file = SafetensorsFile.Open(path);
            using var loaded = file.Load("weight");
            Assert.Equal(dtype, loaded.dtype);
            Assert.Equal(source.data<float>().ToArray(), loaded.to(ScalarType.Float32).data<float>().ToArray());
        }
    }
}
