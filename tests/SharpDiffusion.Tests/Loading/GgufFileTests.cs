using System.Diagnostics;
using SharpDiffusion.Loading;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Loading;

/// <summary>Issue 23 item 4: GGUF v3 read through ITensorFile; golden README "gguf/" and "flux/tiny-flux-dev/single_file/".</summary>
public class GgufFileTests(ITestOutputHelper output)
{
    static readonly string QuantTypes = Golden.Path("v3", "gguf", "quant_types.gguf");
    static readonly string SingleFileDir = Golden.Path("v3", "flux", "tiny-flux-dev", "single_file");

    /// <summary>ComfyUI-GGUF's dequantizer computes in the float16 of the block scales: with that arithmetic every value
    /// is equal; with ggml's float32 arithmetic (our default) each differs by float16 rounding at most (reported).</summary>
    [Theory]
    [InlineData(GgufArithmetic.Float16)]
    [InlineData(GgufArithmetic.Float32)]
    public void Quant_types_every_tensor_equals_comfyui_gguf_dequantized(GgufArithmetic arithmetic)
    {
        var expected = Golden.Load("v3", "gguf", "quant_types_dequantized.safetensors");
        using var file = GgufFile.Open(QuantTypes, arithmetic);
        Assert.Equal(11, file.Headers.Count);
        foreach (var header in file.Headers)
        {
            // tensor_q4_k is stored as Q4_K: the name says the type.
            Assert.Equal(header.Name["tensor_".Length..], header.StoredType!.ToLowerInvariant());
            using var values = file.Load(header.Name);
            using var asFloat = values.to(float32);
            var reference = expected[header.Name];
            double diff = Golden.MaxAbsDiff(asFloat, reference);
            output.WriteLine($"{header.Name} ({header.StoredType}, {arithmetic}): max |diff| {diff:E3} (max |value| {Golden.MaxAbs(reference):E3})");
            if (arithmetic == GgufArithmetic.Float16 || header.StoredType is "F32" or "F16" or "BF16")
                Assert.True(diff == 0, $"{header.Name}: max |diff| {diff:E3}");
            else
                // Float16 keeps 11 significant bits: a few roundings of at most half a unit each (2⁻¹¹ relative).
                Assert.True(diff <= 4 * Math.Pow(2, -11) * Golden.MaxAbs(reference), $"{header.Name}: max |diff| {diff:E3}");
        }
        foreach (var t in expected.Values) t.Dispose();
    }

    [Fact]
    public void Quant_types_read_into_other_dtypes_and_strided_destinations()
    {
        using var file = GgufFile.Open(QuantTypes);
        foreach (var name in file.Tensors.Keys)
        {
            using var reference = file.Load(name).to(float32);
            using var bf16 = empty(reference.shape, bfloat16);
            file.ReadInto(name, bf16);
            using var cast = reference.to(bfloat16);
            Assert.True(Exactly.Same(bf16, cast), name);
            using var transposed = empty(reference.shape[1], reference.shape[0]).t(); // not contiguous
            file.ReadInto(name, transposed);
            Assert.True(Exactly.Same(transposed, reference), name);
        }
    }

    [Fact]
    public void Flux_q8_0_gguf_matches_the_float32_bfl_file_within_one_quantization_step()
    {
        using var gguf = GgufFile.Open(Path.Combine(SingleFileDir, "flux1-tiny-flux-dev-Q8_0.gguf"));
        using var f32 = SafetensorsFile.Open(Path.Combine(SingleFileDir, "flux1-tiny-flux-dev.safetensors"));
        Assert.Equal("flux", gguf.Architecture);
        Assert.Equal(f32.Tensors.Keys.Order(), gguf.Tensors.Keys.Order());
        int quantized = 0;
        foreach (var (name, info) in gguf.Tensors)
        {
            using var source = f32.Load(name);
            using var values = gguf.Load(name);
            Assert.Equal(source.shape, values.shape);
            if (info.Type == GgmlType.Q8_0)
            {
                // Q8_0 blocks are 32 consecutive values with d ≈ max|x|/127: every value within one step d.
                using var blocks = source.reshape(-1, 32);
                using var step = blocks.abs().amax([1], keepdim: true) / 127;
                using var error = (values.reshape(-1, 32) - blocks).abs();
                Assert.True((error <= step * 1.001).all().item<bool>(), name);
                quantized++;
            }
            else
            {
                Assert.Equal(GgmlType.F32, info.Type);
                Assert.True(Exactly.Same(values, source), name);
            }
        }
        Assert.True(quantized > 0);
    }

    [Fact]
    public void Truncated_copy_is_refused_in_one_line_naming_the_file_and_tensor()
    {
        using var dir = new TempDir();
        string path = dir.File("cut.gguf");
        var bytes = File.ReadAllBytes(QuantTypes);
        File.WriteAllBytes(path, bytes[..(bytes.Length - 100)]);
        var e = Assert.Throws<InvalidDataException>(() => TensorFiles.Open(path).Dispose());
        Assert.Contains(path, e.Message);
        Assert.Contains("truncated", e.Message);
        using (var whole = GgufFile.Open(QuantTypes))
        {
            string last = whole.Tensors.Values.MaxBy(t => t.Begin)!.Name;
            Assert.Contains($"'{last}'", e.Message);
        }
        Assert.DoesNotContain('\n', e.Message);

        // Cut inside the header: still one line naming the file.
        File.WriteAllBytes(path, bytes[..200]);
        var header = Assert.Throws<InvalidDataException>(() => GgufFile.Open(path).Dispose());
        Assert.Contains(path, header.Message);
        Assert.DoesNotContain('\n', header.Message);
    }

    [Theory]
    [InlineData(10u, "Q2_K")]
    [InlineData(99u, "type id 99")]
    public void A_type_we_do_not_read_is_refused_by_name(uint typeId, string typeName)
    {
        using var dir = new TempDir();
        string path = dir.File("other.gguf");
        File.WriteAllBytes(path, new GgufTestWriter()
            .String("general.architecture", "flux")
            .Tensor("fine", 0, [4], new byte[16])
            .Tensor("odd.weight", typeId, [256], new byte[84])
            .ToBytes());
        var e = Assert.Throws<NotSupportedException>(() => TensorFiles.Open(path).Dispose());
        Assert.Contains($"GGUF tensor 'odd.weight' in {path} has type {typeName}, which SharpDiffusion does not read", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void A_bogus_count_is_refused_without_allocating()
    {
        using var dir = new TempDir();
        string path = dir.File("bogus.gguf");
        File.WriteAllBytes(path, new GgufTestWriter { TensorCountOverride = 1UL << 60 }.Tensor("t", 0, [4], new byte[16]).ToBytes());
        var e = Assert.Throws<InvalidDataException>(() => GgufFile.Open(path).Dispose());
        Assert.Contains("the tensor count", e.Message);

        File.WriteAllBytes(path, new GgufTestWriter().Tensor("huge", 8, [1UL << 40, 1UL << 40], new byte[34]).ToBytes());
        e = Assert.Throws<InvalidDataException>(() => GgufFile.Open(path).Dispose());
        Assert.Contains("tensor 'huge' has an impossible shape", e.Message);
        File.WriteAllBytes(path, new GgufTestWriter().Tensor("large", 8, [1UL << 32, 32], new byte[34]).ToBytes());
        e = Assert.Throws<InvalidDataException>(() => GgufFile.Open(path).Dispose());
        Assert.Contains("tensor 'large' (4294967296 blocks of 34 bytes) does not fit", e.Message);

        var array = new GgufTestWriter().Metadata("tokenizer.ggml.tokens", 9, w => { w.Write(8u); w.Write(1UL << 62); });
        File.WriteAllBytes(path, array.ToBytes());
        e = Assert.Throws<InvalidDataException>(() => GgufFile.Open(path).Dispose());
        Assert.Contains("tokenizer.ggml.tokens", e.Message);
    }

    [Fact]
    public void Metadata_of_every_value_type_is_read()
    {
        using var dir = new TempDir();
        string path = dir.File("meta.gguf");
        var writer = new GgufTestWriter()
            .Metadata("u8", 0, w => w.Write((byte)200)).Metadata("i8", 1, w => w.Write((sbyte)-100))
            .Metadata("u16", 2, w => w.Write((ushort)60000)).Metadata("i16", 3, w => w.Write((short)-30000))
            .Metadata("u32", 4, w => w.Write(4000000000u)).Metadata("i32", 5, w => w.Write(-2000000000))
            .Metadata("f32", 6, w => w.Write(1.5f)).Metadata("bool", 7, w => w.Write((byte)1))
            .String("general.architecture", "sd3")
            .Metadata("u64", 10, w => w.Write(ulong.MaxValue)).Metadata("i64", 11, w => w.Write(long.MinValue))
            .Metadata("f64", 12, w => w.Write(Math.PI))
            .Metadata("strings", 9, w => { w.Write(8u); w.Write(2UL); GgufTestWriter.WriteString(w, "a"); GgufTestWriter.WriteString(w, "bc"); })
            .Metadata("nested", 9, w => { w.Write(9u); w.Write(1UL); w.Write(5u); w.Write(2UL); w.Write(7); w.Write(-7); })
            .Metadata("general.alignment", 4, w => w.Write(32u));
        File.WriteAllBytes(path, writer.ToBytes());
        using var file = GgufFile.Open(path);
        Assert.Equal("sd3", file.Architecture);
        Assert.Equal((byte)200, file.Metadata["u8"]);
        Assert.Equal((sbyte)-100, file.Metadata["i8"]);
        Assert.Equal((ushort)60000, file.Metadata["u16"]);
        Assert.Equal((short)-30000, file.Metadata["i16"]);
        Assert.Equal(4000000000u, file.Metadata["u32"]);
        Assert.Equal(-2000000000, file.Metadata["i32"]);
        Assert.Equal(1.5f, file.Metadata["f32"]);
        Assert.Equal(true, file.Metadata["bool"]);
        Assert.Equal(ulong.MaxValue, file.Metadata["u64"]);
        Assert.Equal(long.MinValue, file.Metadata["i64"]);
        Assert.Equal(Math.PI, file.Metadata["f64"]);
        Assert.Equal(new[] { "a", "bc" }, file.Metadata["strings"]);
        var nested = Assert.IsType<object[]>(file.Metadata["nested"]);
        Assert.Equal(new[] { 7, -7 }, nested[0]);
        Assert.Equal(32, file.Alignment);
        Assert.Empty(file.Headers);
    }

    /// <summary>ComfyUI-GGUF's converter stores some tensors flattened and their torch shape under
    /// comfy.gguf.orig_shape.NAME (int32 array); without it the shape is the dimensions reversed.</summary>
    [Fact]
    public void Shapes_are_the_dimensions_reversed_or_comfy_original_shape()
    {
        using var dir = new TempDir();
        string path = dir.File("shapes.gguf");
        var values = Enumerable.Range(0, 24).Select(i => (float)i).ToArray();
        var data = values.SelectMany(BitConverter.GetBytes).ToArray();
        File.WriteAllBytes(path, new GgufTestWriter()
            .Metadata("comfy.gguf.orig_shape.conv", 9, w => { w.Write(5u); w.Write(4UL); foreach (int d in new[] { 2, 3, 2, 2 }) w.Write(d); })
            .Tensor("linear", 0, [4, 6], data)
            .Tensor("conv", 0, [24], data)
            .ToBytes());
        using var file = TensorFiles.Open(path);
        Assert.Equal(new long[] { 6, 4 }, file.Headers.Single(h => h.Name == "linear").Shape);
        Assert.Equal(new long[] { 2, 3, 2, 2 }, file.Headers.Single(h => h.Name == "conv").Shape);
        using var linear = file.Load("linear");
        using var expected = tensor(values).reshape(6, 4); // ne0 = 4 values per row, fastest
        Assert.True(Exactly.Same(linear, expected));
    }

    /// <summary>Not a parity check: how fast a large tensor dequantizes (written to the test output), and that the chunked
    /// (and, for Q8_0, vectorized) read gives the same values as the stored blocks dequantized at once by the scalar code.</summary>
    [Theory]
    [InlineData(GgmlType.Q8_0)]
    [InlineData(GgmlType.Q4_K)]
    [InlineData(GgmlType.Q6_K)]
    public void A_large_tensor_dequantizes_in_chunks_like_the_scalar_code_at_once(GgmlType type)
    {
        var (elements, bytes) = GgufQuantization.BlockOf(type);
        const int Rows = 4096, Columns = 4096;           // 16 M values: four chunks of stored blocks or more
        var data = new byte[(long)Rows * Columns / elements * bytes];
        new Random(7).NextBytes(data);
        for (int b = 0; b < data.Length; b += bytes)
        {
            // Finite float16 scales (exponent bits not all ones), so every value is a number.
            int at = type == GgmlType.Q6_K ? b + 208 : b;
            data[at + 1] &= 0x3B;
            if (type == GgmlType.Q4_K) data[b + 3] &= 0x3B;
        }
        using var dir = new TempDir();
        string path = dir.File("large.gguf");
        File.WriteAllBytes(path, new GgufTestWriter().Tensor("w", (uint)type, [Columns, Rows], data).ToBytes());
        using var file = GgufFile.Open(path);
        using var values = empty(Rows, Columns);
        file.ReadInto("w", values); // once first: the file in the page cache, as for the timed read
        // Wall time and the process's CPU time: on a shared machine the wall clock also counts waiting for a core.
        var process = Process.GetCurrentProcess();
        var cpuBefore = process.TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        file.ReadInto("w", values);
        double seconds = clock.Elapsed.TotalSeconds;
        process.Refresh();
        double cpu = (process.TotalProcessorTime - cpuBefore).TotalSeconds;
        output.WriteLine($"{type}: {data.Length / 1e6:F0} MB stored → {values.numel() * 4 / 1e6:F0} MB float32 in {seconds * 1000:F0} ms wall, " +
            $"{cpu * 1000:F0} ms CPU: {values.numel() * 4 / 1e6 / seconds:F0} MB/s float32 by the wall clock, {values.numel() * 4 / 1e6 / cpu:F0} MB/s by CPU time");

        var whole = new float[values.numel()];
        GgufQuantization.DequantizeScalar(type, data, whole);
        var inMemory = Stopwatch.StartNew();
        GgufQuantization.Dequantize(type, data, whole);
        double vectorSeconds = inMemory.Elapsed.TotalSeconds;
        inMemory.Restart();
        GgufQuantization.DequantizeScalar(type, data, whole);
        output.WriteLine($"{type} in memory, no file: {whole.Length * 4 / 1e6 / vectorSeconds:F0} MB/s float32; " +
            $"scalar code {whole.Length * 4 / 1e6 / inMemory.Elapsed.TotalSeconds:F0} MB/s (wall clock)");
        using var expected = tensor(whole).reshape(Rows, Columns);
        Assert.True(Exactly.Same(values, expected));
        Assert.False(values.isnan().any().item<bool>());
    }
}
