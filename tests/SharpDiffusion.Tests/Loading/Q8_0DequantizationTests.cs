using System.Buffers.Binary;
using System.Diagnostics;
using SharpDiffusion.Loading;
using SharpDiffusion.Tests.Flux;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Loading;

/// <summary>Issue 23 item 5: Q8_0 compact weights dequantize in one parallel SIMD pass in both arithmetics. The float16
/// arithmetic's vector rounding must be the scalar <c>(float)(Half)(d·q)</c> bit for bit: on every finite float16 scale
/// times every int8 code, and on every Q8_0 value of the golden GGUF files (README "gguf/", "flux/.../single_file/").</summary>
public class Q8_0DequantizationTests(ITestOutputHelper output)
{
    /// <summary>The scalar reference: ComfyUI-GGUF's float16 multiply (or the float32 product) per value.</summary>
    static float[] Reference(ReadOnlySpan<byte> blocks, GgufArithmetic arithmetic)
    {
        var values = new float[blocks.Length / 34 * 32];
        for (int b = 0; b < blocks.Length / 34; b++)
        {
            float d = (float)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(blocks[(34 * b)..]));
            for (int j = 0; j < 32; j++)
            {
                float x = d * (sbyte)blocks[34 * b + 2 + j];
                values[32 * b + j] = arithmetic == GgufArithmetic.Float16 ? (float)(Half)x : x;
            }
        }
        return values;
    }

    static int FirstBitDifference(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToUInt32Bits(actual[i]) != BitConverter.SingleToUInt32Bits(expected[i])) return i;
        return -1;
    }

    /// <summary>8 blocks per finite float16 scale: the 256 int8 codes once each (65536 − 2048 scales × 256 products).</summary>
    static byte[] EveryScaleTimesEveryCode()
    {
        var scales = Enumerable.Range(0, 65536).Where(h => ((h >> 10) & 0x1F) != 0x1F).ToArray();
        var blocks = new byte[scales.Length * 8 * 34];
        for (int s = 0; s < scales.Length; s++)
            for (int k = 0; k < 8; k++)
            {
                int at = (s * 8 + k) * 34;
                BinaryPrimitives.WriteUInt16LittleEndian(blocks.AsSpan(at), (ushort)scales[s]);
                for (int j = 0; j < 32; j++) blocks[at + 2 + j] = (byte)(k * 32 + j);   // code −128…127 as its byte
            }
        return blocks;
    }

    [Theory]
    [InlineData(GgufArithmetic.Float16)]
    [InlineData(GgufArithmetic.Float32)]
    public void Every_finite_float16_scale_times_every_int8_code_equals_the_scalar_product(GgufArithmetic arithmetic)
    {
        var blocks = EveryScaleTimesEveryCode();
        var expected = Reference(blocks, arithmetic);
        var values = new float[expected.Length];
        GgufQuantization.Dequantize(GgmlType.Q8_0, blocks, values, arithmetic);
        int at = FirstBitDifference(values, expected);
        Assert.True(at < 0, at < 0 ? "" : $"value {at}: {values[at]:R} instead of {expected[at]:R}");

        // The compact weight's parallel pass over the same blocks (one block a row).
        using var compact = CompactWeight.Gguf(tensor(blocks), [blocks.Length / 34, 32], GgmlType.Q8_0, arithmetic);
        using var decoded = compact.Dequantize(ScalarType.Float32);
        at = FirstBitDifference(decoded.data<float>().ToArray(), expected);
        Assert.True(at < 0, at < 0 ? "" : $"compact value {at} differs from the scalar product");
        output.WriteLine($"{arithmetic}: {expected.Length} products bit-identical to the scalar path");
    }

    [Theory]
    [InlineData("gguf")]
    [InlineData("flux")]
    public void Every_golden_q8_0_value_equals_the_scalar_product(string which)
    {
        string path = which == "gguf" ? Golden.Path("v3", "gguf", "quant_types.gguf") : FluxGolden.SingleFile(FluxGolden.GgufFile);
        foreach (var arithmetic in new[] { GgufArithmetic.Float16, GgufArithmetic.Float32 })
        {
            using var file = GgufFile.Open(path, arithmetic);
            int count = 0;
            foreach (var (name, info) in file.Tensors.Where(t => t.Value.Type == GgmlType.Q8_0))
            {
                using var compact = file.LoadCompact(name);
                Assert.NotNull(compact);
                var expected = Reference(compact.Stored.data<byte>().ToArray(), arithmetic);
                using var values = compact.Dequantize(ScalarType.Float32);
                int at = FirstBitDifference(values.data<float>().ToArray(), expected);
                Assert.True(at < 0, $"{name} ({arithmetic}): value {at} differs from the scalar product");
                count++;
            }
            Assert.True(count > 0, $"{path}: no Q8_0 tensor");
            output.WriteLine($"{Path.GetFileName(path)} ({arithmetic}): {count} Q8_0 tensors bit-identical to the scalar path");
        }
    }

    [Theory]
    [InlineData(GgufArithmetic.Float16)]
    [InlineData(GgufArithmetic.Float32)]
    public void Dequantize_into_a_reused_buffer_gives_the_fresh_tensor_values(GgufArithmetic arithmetic)
    {
        using var file = GgufFile.Open(FluxGolden.SingleFile(FluxGolden.GgufFile), arithmetic);
        var name = file.Tensors.First(t => t.Value.Type == GgmlType.Q8_0).Key;
        using var compact = file.LoadCompact(name)!;
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.BFloat16, ScalarType.Float16 })
        {
            using var fresh = compact.Dequantize(dtype);
            using var buffer = full(compact.Shape, float.NaN, dtype);
            for (int call = 0; call < 2; call++)
                Assert.Same(buffer, compact.Dequantize(dtype, buffer));
            Assert.True(Exactly.Same(buffer, fresh), $"{name} in {dtype}: the reused buffer differs from a fresh dequantization");
        }
        using var wrong = empty([compact.Shape[0] + 1, .. compact.Shape[1..]], ScalarType.Float32);
        var error = Assert.Throws<ArgumentException>(() => compact.Dequantize(ScalarType.Float32, wrong));
        Assert.DoesNotContain('\n', error.Message);
        Assert.Contains("Q8_0", error.Message);
    }

    [Fact]
    public void Dequantize_into_a_reused_buffer_keeps_a_scaled_float8_product()
    {
        using var codes = arange(0, 256 * 4, ScalarType.Int32).remainder(256).to(ScalarType.Byte);
        using var compact = CompactWeight.Float8(codes.clone(), [32, 32], "F8_E4M3").WithScale(0.37f);
        using var fresh = compact.Dequantize(ScalarType.Float32);
        using var buffer = empty(compact.Shape, ScalarType.Float32);
        compact.Dequantize(ScalarType.Float32, buffer);
        // Bitwise (the E4M3 codes 0x7F and 0xFF are NaN).
        int at = FirstBitDifference(buffer.data<float>().ToArray(), fresh.data<float>().ToArray());
        Assert.True(at < 0, $"scaled float8 value {at} in a reused buffer differs from a fresh dequantization");
    }

    /// <summary>The libtorch passes Q8_0 used before (to(Int16), ge, sub, to(Float16), mul, to(Float32)), kept here as the
    /// benchmark's baseline and a second reference.</summary>
    static Tensor LibtorchQ8_0(CompactWeight weight, GgufArithmetic arithmetic)
    {
        long n = weight.Stored.numel() / 34;
        using var scope = NewDisposeScope();
        var d = empty([n], ScalarType.Float32);
        var scales = TensorMemory.Span<float>(d, 0, (int)n);
        var stored = TensorMemory.Bytes(weight.Stored, 0, (int)weight.Stored.numel());
        for (int b = 0; b < scales.Length; b++)
            scales[b] = (float)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(stored[(34 * b)..]));
        var u = weight.Stored.view(-1, 34).narrow(1, 2, 32).to(ScalarType.Int16);
        var q = u.sub_(u.ge(128).to(ScalarType.Int16).mul_(256));
        var product = arithmetic == GgufArithmetic.Float16
            ? q.to(ScalarType.Float16).mul_(d.view(n, 1).to(ScalarType.Float16))
            : q.to(ScalarType.Float32).mul_(d.view(n, 1));
        return product.view(weight.Shape).to(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>Prints, does not assert, timing: a Flux-sized [3072, 12288] Q8_0 weight (and float8) dequantized 10× by the
    /// old libtorch passes and the new SIMD pass (fresh tensor and reused buffer). Asserts only that the values agree.</summary>
    [Fact]
    public void Flux_sized_weight_dequantization_timing_is_printed()
    {
        const int rows = 3072, columns = 12288, calls = 10;
        var generator = new Random(23);
        var blocks = new byte[rows * columns / 32 * 34];
        generator.NextBytes(blocks);
        for (int at = 0; at < blocks.Length; at += 34)                  // scales of real weights: ~1e-4…1e-2
            BinaryPrimitives.WriteUInt16LittleEndian(blocks.AsSpan(at), BitConverter.HalfToUInt16Bits((Half)(generator.NextSingle() * 0.01f + 1e-4f)));
        double gigabytes = (double)rows * columns * 4 / 1e9;               // float32 output written per call
        foreach (var arithmetic in new[] { GgufArithmetic.Float16, GgufArithmetic.Float32 })
        {
            using var weight = CompactWeight.Gguf(tensor(blocks), [rows, columns], GgmlType.Q8_0, arithmetic);
            using (var old = LibtorchQ8_0(weight, arithmetic))
            using (var fast = weight.Dequantize(ScalarType.Float32))
                Assert.True(Exactly.Same(fast, old), $"{arithmetic}: the SIMD pass differs from the libtorch passes");
            using var buffer = empty(weight.Shape, ScalarType.Float32);
            Report($"Q8_0 {arithmetic} libtorch passes", () => LibtorchQ8_0(weight, arithmetic).Dispose());
            Report($"Q8_0 {arithmetic} SIMD pass", () => weight.Dequantize(ScalarType.Float32).Dispose());
            Report($"Q8_0 {arithmetic} SIMD pass, reused buffer", () => weight.Dequantize(ScalarType.Float32, buffer));
        }
        using var codes = tensor(blocks.AsSpan(0, rows * columns).ToArray());
        using var float8 = CompactWeight.Float8(codes, [rows, columns], "F8_E4M3");
        using var float8Buffer = empty(float8.Shape, ScalarType.Float32);
        Report("F8_E4M3 table pass", () => float8.Dequantize(ScalarType.Float32).Dispose());
        Report("F8_E4M3 table pass, reused buffer", () => float8.Dequantize(ScalarType.Float32, float8Buffer));

        void Report(string what, Action call)
        {
            call();                                                           // warm-up (JIT, first pages)
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < calls; i++) call();
            double ms = clock.Elapsed.TotalMilliseconds / calls;
            output.WriteLine($"[{rows}, {columns}] {what}: {ms:F1} ms a call, {gigabytes / (ms / 1000):F2} GB/s of float32 written ({Environment.ProcessorCount} threads)");
        }
    }
}
