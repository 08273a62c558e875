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
    public void A_file_cut_short_after_it_was_opened_is_reported_when_read()
    {
        using var dir = new TempDir();
        string path = dir.File("cut.safetensors");
        File.Copy(Golden.Path("text_encoder", "tiny-sd.safetensors"), path);
        using var file = SafetensorsFile.Open(path);
        var last = file.Tensors.Values.MaxBy(e => e.End)!;
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Write))
            stream.SetLength(stream.Length - (last.End - last.Begin) / 2);
        var e = Assert.Throws<InvalidDataException>(() => file.Load(last.Name).Dispose());
        Assert.Contains(path, e.Message);
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void Read_into_converts_dtype_and_layout_as_the_tensor_to_would()
    {
        using var file = SafetensorsFile.Open(Golden.Path("text_encoder", "tiny-sd.safetensors"));
        var entry = file.Tensors.Values.Where(e => e.DType == "F32" && e.Shape.Length >= 2).MaxBy(e => e.ElementCount)!;
        using var stored = file.Load(entry.Name);
        using var expected = stored.to(ScalarType.BFloat16);
        using var into = empty(entry.Shape, ScalarType.BFloat16);
        file.ReadInto(entry.Name, into);
        Assert.True(into.eq(expected).all().item<bool>(), $"{entry.Name} read into bfloat16 differs from Load().to(bfloat16)");
        using var reversedStorage = empty(entry.Shape.Reverse().ToArray(), ScalarType.Float32);
        using var strided = reversedStorage.permute(Enumerable.Range(0, entry.Shape.Length).Reverse().Select(d => (long)d).ToArray()); // the stored shape, other strides
        Assert.False(strided.is_contiguous());
        file.ReadInto(entry.Name, strided);
        Assert.True(strided.eq(stored).all().item<bool>(), $"{entry.Name} read into a strided tensor differs");
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
