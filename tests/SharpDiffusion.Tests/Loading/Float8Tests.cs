using SharpDiffusion.Loading;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Loading;

/// <summary>Issue 23 item 4: safetensors F8_E4M3 / F8_E5M2; golden README "flux/tiny-flux-dev/single_file/" (every 2-D
/// weight of the float32 file cast to float8_e4m3fn, no scale).</summary>
public class Float8Tests
{
    static readonly string SingleFileDir = Golden.Path("v3", "flux", "tiny-flux-dev", "single_file");

    /// <summary>Half the spacing of e4m3fn values around |x|: 2^(e−3) in the binade 2^e (e ≥ −6), 2⁻⁹ below it.</summary>
    static double HalfStepE4M3(double x) => x == 0 ? Math.Pow(2, -10) : Math.Pow(2, Math.Max(Math.Floor(Math.Log2(Math.Abs(x))), -6) - 3) / 2;

    /// <summary>Whether a value has the form of an e4m3fn number: 3 mantissa bits, exponent −6..8, |x| ≤ 448 (no inf).</summary>
    static bool IsE4M3(double v)
    {
        if (v == 0) return true;
        double exponent = Math.Max(Math.Floor(Math.Log2(Math.Abs(v))), -6);
        double scaled = Math.Abs(v) / Math.Pow(2, exponent - 3); // an integer when 3 mantissa bits suffice
        return exponent <= 8 && scaled == Math.Floor(scaled) && Math.Abs(v) <= 448;
    }

    [Fact]
    public void Fp8_flux_file_is_within_e4m3_rounding_of_the_float32_file()
    {
        using var fp8 = TensorFiles.Open(Path.Combine(SingleFileDir, "flux1-tiny-flux-dev-fp8_e4m3fn.safetensors"));
        using var f32 = SafetensorsFile.Open(Path.Combine(SingleFileDir, "flux1-tiny-flux-dev.safetensors"));
        Assert.Equal(f32.Headers.Select(h => h.Name).Order(), fp8.Headers.Select(h => h.Name).Order());
        int float8 = 0;
        foreach (var header in fp8.Headers)
        {
            using var source = f32.Load(header.Name);
            using var values = fp8.Load(header.Name);
            Assert.Equal(source.shape, values.shape);
            if (header.StoredType != "F8_E4M3")
            {
                Assert.True(Exactly.Same(values, source.to(values.dtype)), header.Name);
                continue;
            }
            float8++;
            Assert.Equal(ScalarType.Float32, values.dtype);
            var decoded = values.data<float>().ToArray();
            var exact = source.data<float>().ToArray();
            for (int i = 0; i < decoded.Length; i++)
            {
                Assert.True(IsE4M3(decoded[i]), $"{header.Name}[{i}] = {decoded[i]} is not an e4m3fn value");
                Assert.True(Math.Abs(decoded[i] - exact[i]) <= HalfStepE4M3(exact[i]),
                    $"{header.Name}[{i}]: {decoded[i]} is not {exact[i]} rounded to e4m3fn");
            }

            // The raw codes are kept for compact use; decoding them gives the same values, in any destination dtype.
            using var raw = fp8.LoadRaw(header.Name);
            Assert.Equal(ScalarType.Byte, raw.dtype);
            Assert.Equal(decoded, raw.data<byte>().ToArray().Select(b => Float8.E4M3FnValues[b]));
            using var bf16 = empty(values.shape, bfloat16);
            fp8.ReadInto(header.Name, bf16);
            Assert.True(Exactly.Same(bf16, values.to(bfloat16)), header.Name);
        }
        Assert.True(float8 > 0);
    }

    [Fact]
    public void E4M3Fn_table_is_every_e4m3fn_value_once_with_nan_at_all_ones()
    {
        var table = Float8.E4M3FnValues;
        // Positive codes 0x00..0x7E rise strictly; 0x7F (S.1111.111) is NaN; negative codes mirror them (0x80 is −0).
        for (int b = 1; b < 0x7F; b++) Assert.True(table[b] > table[b - 1], $"code {b}");
        Assert.True(float.IsNaN(table[0x7F]) && float.IsNaN(table[0xFF]));
        for (int b = 0; b < 0x7F; b++) Assert.Equal(-table[b], table[b | 0x80]);
        Assert.All(Enumerable.Range(0, 0x7F), b => Assert.True(IsE4M3(table[b])));
        Assert.Equal(0x7E, table.Count(v => v > 0 && !float.IsNaN(v)));
    }

    [Fact]
    public void E5M2_table_has_inf_and_nan_where_float16_does()
    {
        var table = Float8.E5M2Values;
        for (int b = 1; b < 0x7C; b++) Assert.True(table[b] > table[b - 1], $"code {b}");
        Assert.True(float.IsPositiveInfinity(table[0x7C]) && float.IsNegativeInfinity(table[0xFC]));
        Assert.All(new[] { 0x7D, 0x7E, 0x7F, 0xFD, 0xFE, 0xFF }, b => Assert.True(float.IsNaN(table[b])));
        // Two mantissa bits: each finite value times 4 / 2^exponent is an integer (subnormals at 2⁻¹⁶ steps).
        for (int b = 1; b < 0x7C; b++)
        {
            double exponent = Math.Max(Math.Floor(Math.Log2(table[b])), -14);
            double scaled = table[b] / Math.Pow(2, exponent - 2);
            Assert.Equal(Math.Floor(scaled), scaled);
        }
    }

    [Fact]
    public void A_float8_e5m2_tensor_loads_from_safetensors()
    {
        using var dir = new TempDir();
        // Every code once, as a [16, 16] F8_E5M2 tensor; beside it, as F16, the float16s whose upper byte is the code and
        // lower byte zero (torch's e5m2 → float16 is exactly that), converted to float32 by libtorch.
        string path = dir.File("e5m2.safetensors"), halfPath = dir.File("f16.safetensors");
        File.WriteAllBytes(path, OneTensorFile("F8_E5M2", Enumerable.Range(0, 256).Select(b => (byte)b).ToArray()));
        File.WriteAllBytes(halfPath, OneTensorFile("F16", Enumerable.Range(0, 256).SelectMany(b => new[] { (byte)0, (byte)b }).ToArray()));

        using var file = TensorFiles.Open(path);
        Assert.Equal("F8_E5M2", file.Headers.Single().StoredType);
        using var values = file.Load("w");
        Assert.Equal(new long[] { 16, 16 }, values.shape);
        using var halves = SafetensorsFile.Open(halfPath);
        using var asHalf = halves.Load("w").to(float32);
        Assert.True(Exactly.Same(values.isnan(), asHalf.isnan()));
        Assert.True(Exactly.Same(values.nan_to_num(), asHalf.nan_to_num()));
    }

    /// <summary>A safetensors file of one [16, 16] tensor "w" (SafetensorsWriter writes no float8).</summary>
    static byte[] OneTensorFile(string dtype, byte[] data)
    {
        var header = System.Text.Encoding.UTF8.GetBytes($"{{\"w\":{{\"dtype\":\"{dtype}\",\"shape\":[16,16],\"data_offsets\":[0,{data.Length}]}}}}");
        var bytes = new byte[8 + header.Length + data.Length];
        BitConverter.GetBytes((ulong)header.Length).CopyTo(bytes, 0);
        header.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + header.Length);
        return bytes;
    }
}
