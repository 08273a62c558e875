using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace SharpDiffusion.Loading;

/// <summary>ggml's tensor types by the id a GGUF file stores (ggml.h's <c>enum ggml_type</c>; 4, 5 and 31–33 retired).</summary>
public enum GgmlType : uint
{
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
    IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
    I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30, TQ1_0 = 34, TQ2_0 = 35,
}

/// <summary>How each product and sum of a dequantization is rounded: float32 (ggml's own dequantize_row_*), or
/// float16 after every operation, as ComfyUI-GGUF's dequantizer computes in its default dtype (that of the float16 scales).</summary>
public enum GgufArithmetic { Float32, Float16 }

/// <summary>
/// ggml's block formats, dequantized to float32 with the products and sums in ComfyUI-GGUF's order, each rounded as
/// <see cref="GgufArithmetic"/> says (float16: bit for bit its default). A block of <c>Elements</c> values takes <c>Bytes</c>
/// bytes; <c>d</c>, <c>m</c>, <c>dmin</c> are float16 scales. Elements are numbered in storage order (fastest first).
/// <list type="bullet">
/// <item>Q8_0 (32 in 34): d, 32 × int8 q — x = d·q.</item>
/// <item>Q4_0 (32 in 18): d, 16 bytes — element j &lt; 16 is the low nibble of byte j, element 16+j its high one; x = d·(q − 8).</item>
/// <item>Q4_1 (32 in 20): d, m, nibbles as Q4_0 — x = d·q + m.</item>
/// <item>Q5_0 (32 in 22): d, 32-bit qh, nibbles as Q4_0; bit j of qh is element j's fifth bit — x = d·(q − 16).</item>
/// <item>Q5_1 (32 in 24): d, m, qh, nibbles — x = d·q + m.</item>
/// <item>Q4_K (256 in 144): d, dmin, 12 bytes of eight 6-bit scales and mins, 128 bytes of nibbles: sub-block s (32
/// values) is byte 32·⌊s/2⌋ + l, low nibble for even s — x = (d·sc_s)·q − dmin·m_s.</item>
/// <item>Q5_K (256 in 176): as Q4_K with 32 bytes qh between scales and nibbles; bit s of qh[l] is the fifth bit.</item>
/// <item>Q6_K (256 in 210): 128 bytes low nibbles, 64 bytes 2-bit highs, 16 int8 scales, d — x = (d·sc_⌊e/16⌋)·(q − 32).</item>
/// </list>
/// The kernels skip tiered compilation (a tensor is one long call: its first run would otherwise be unoptimized code).
/// </summary>
public static class GgufQuantization
{
    /// <summary>Values per block and bytes per block of each type SharpDiffusion reads.</summary>
    static readonly Dictionary<GgmlType, (int Elements, int Bytes)> Blocks = new()
    {
        [GgmlType.F32] = (1, 4), [GgmlType.F16] = (1, 2), [GgmlType.BF16] = (1, 2),
        [GgmlType.Q8_0] = (32, 34), [GgmlType.Q4_0] = (32, 18), [GgmlType.Q4_1] = (32, 20),
        [GgmlType.Q5_0] = (32, 22), [GgmlType.Q5_1] = (32, 24),
        [GgmlType.Q4_K] = (256, 144), [GgmlType.Q5_K] = (256, 176), [GgmlType.Q6_K] = (256, 210),
    };

    /// <summary>The types SharpDiffusion reads, for messages.</summary>
    public static string Supported => string.Join(", ", Blocks.Keys);

    public static bool IsSupported(GgmlType type) => Blocks.ContainsKey(type);

    /// <summary>Values per block and bytes per block; the type must be supported.</summary>
    public static (int Elements, int Bytes) BlockOf(GgmlType type) => Blocks[type];

    /// <summary>A type's name as ggml spells it, or "type id N" for an id ggml does not define.</summary>
    public static string NameOf(uint id) => Enum.IsDefined(typeof(GgmlType), id) ? ((GgmlType)id).ToString() : $"type id {id}";

    /// <summary>Whole blocks of <paramref name="type"/> into their float32 values (<paramref name="values"/> holds
    /// blocks.Length / Bytes · Elements of them).</summary>
    public static void Dequantize(GgmlType type, ReadOnlySpan<byte> blocks, Span<float> values, GgufArithmetic arithmetic = GgufArithmetic.Float32)
    {
        if (arithmetic == GgufArithmetic.Float16)
            Dequantize<Float16Rounding>(type, blocks, values);
        else
            Dequantize<Float32Rounding>(type, blocks, values);
    }

    /// <summary>Float32 without the vector kernels: what they must equal (for tests).</summary>
    internal static void DequantizeScalar(GgmlType type, ReadOnlySpan<byte> blocks, Span<float> values)
    {
        if (type == GgmlType.Q8_0) Q8_0<Float32Rounding>(blocks, values);
        else Dequantize<Float32Rounding>(type, blocks, values);
    }

    /// <summary>A rounding step after each operation; a struct type argument, so the JIT compiles each kernel once per
    /// rounding with the call inlined (float32's is nothing at all).</summary>
    interface IRounding { static abstract float Round(float x); }
    struct Float32Rounding : IRounding { public static float Round(float x) => x; }
    struct Float16Rounding : IRounding { public static float Round(float x) => (float)(Half)x; }

    static void Dequantize<R>(GgmlType type, ReadOnlySpan<byte> blocks, Span<float> values) where R : struct, IRounding
    {
        var (elements, bytes) = Blocks[type];
        if (blocks.Length % bytes != 0 || values.Length != blocks.Length / bytes * elements)
            throw new ArgumentException($"GgufQuantization.Dequantize: {blocks.Length} bytes of {type} are not whole blocks of {bytes} for {values.Length} values.");
        switch (type)
        {
            case GgmlType.F32: MemoryMarshal.Cast<byte, float>(blocks).CopyTo(values); break;
            case GgmlType.F16: F16(blocks, values); break;
            case GgmlType.BF16: BF16(blocks, values); break;
            case GgmlType.Q8_0 when typeof(R) == typeof(Float32Rounding) && Vector256.IsHardwareAccelerated: Q8_0Vector(blocks, values); break;
            case GgmlType.Q8_0 when typeof(R) == typeof(Float16Rounding) && Vector256.IsHardwareAccelerated: Q8_0VectorHalf(blocks, values); break;
            case GgmlType.Q8_0: Q8_0<R>(blocks, values); break;
            case GgmlType.Q4_0: Q4<R>(blocks, values, hasMin: false); break;
            case GgmlType.Q4_1: Q4<R>(blocks, values, hasMin: true); break;
            case GgmlType.Q5_0: Q5<R>(blocks, values, hasMin: false); break;
            case GgmlType.Q5_1: Q5<R>(blocks, values, hasMin: true); break;
            case GgmlType.Q4_K: QK<R>(blocks, values, fifthBit: false); break;
            case GgmlType.Q5_K: QK<R>(blocks, values, fifthBit: true); break;
            case GgmlType.Q6_K: Q6_K<R>(blocks, values); break;
        }
    }

    static float Half(ReadOnlySpan<byte> b, int at) => (float)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(b[at..]));

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void F16(ReadOnlySpan<byte> blocks, Span<float> values)
    {
        var halves = MemoryMarshal.Cast<byte, Half>(blocks);
        for (int i = 0; i < halves.Length; i++) values[i] = (float)halves[i];
    }

    /// <summary>bfloat16 is the upper half of a float32: its bits shifted up 16.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void BF16(ReadOnlySpan<byte> blocks, Span<float> values)
    {
        var words = MemoryMarshal.Cast<byte, ushort>(blocks);
        var bits = MemoryMarshal.Cast<float, uint>(values);
        for (int i = 0; i < words.Length; i++) bits[i] = (uint)words[i] << 16;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Q8_0<R>(ReadOnlySpan<byte> blocks, Span<float> values) where R : struct, IRounding
    {
        for (int b = 0, o = 0; b < blocks.Length; b += 34, o += 32)
        {
            float d = Half(blocks, b);
            var q = MemoryMarshal.Cast<byte, sbyte>(blocks.Slice(b + 2, 32));
            var x = values.Slice(o, 32);
            for (int j = 0; j < 32; j++) x[j] = R.Round(d * q[j]);
        }
    }

    /// <summary>Q8_0 in float32, 8 lanes at a time: the same products d·q as <see cref="Q8_0{R}"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void Q8_0Vector(ReadOnlySpan<byte> blocks, Span<float> values)
    {
        fixed (byte* source = blocks)
        fixed (float* target = values)
        {
            for (int b = 0, o = 0; b < blocks.Length; b += 34, o += 32)
            {
                var d = Vector256.Create((float)BitConverter.UInt16BitsToHalf(Unsafe.ReadUnaligned<ushort>(source + b)));
                var q = Vector256.Load((sbyte*)(source + b + 2));                 // 32 × int8
                var (q0, q1) = Vector256.Widen(q);                                 // 2 × 16 × int16
                var (a, c) = Vector256.Widen(q0);                                  // values 0–7, 8–15
                var (e, f) = Vector256.Widen(q1);                                  // values 16–23, 24–31
                (Vector256.ConvertToSingle(a) * d).Store(target + o);
                (Vector256.ConvertToSingle(c) * d).Store(target + o + 8);
                (Vector256.ConvertToSingle(e) * d).Store(target + o + 16);
                (Vector256.ConvertToSingle(f) * d).Store(target + o + 24);
            }
        }
    }

    /// <summary>Q8_0 under <see cref="GgufArithmetic.Float16"/>, 8 lanes at a time: the exact float32 product d·q (at most
    /// 11 + 8 significant bits) rounded to float16's precision in float32 (<see cref="RoundToHalf"/>); a group of 8 with a
    /// lane beyond float16's largest finite value is redone by the scalar <c>(float)(Half)x</c>, which gives ±inf there.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void Q8_0VectorHalf(ReadOnlySpan<byte> blocks, Span<float> values)
    {
        fixed (byte* source = blocks)
        fixed (float* target = values)
        {
            for (int b = 0, o = 0; b < blocks.Length; b += 34, o += 32)
            {
                float scale = (float)BitConverter.UInt16BitsToHalf(Unsafe.ReadUnaligned<ushort>(source + b));
                var d = Vector256.Create(scale);
                var q = Vector256.Load((sbyte*)(source + b + 2));                 // 32 × int8
                var (q0, q1) = Vector256.Widen(q);
                var (a, c) = Vector256.Widen(q0);
                var (e, f) = Vector256.Widen(q1);
                var overflow = RoundToHalf(Vector256.ConvertToSingle(a) * d, target + o)
                    | RoundToHalf(Vector256.ConvertToSingle(c) * d, target + o + 8)
                    | RoundToHalf(Vector256.ConvertToSingle(e) * d, target + o + 16)
                    | RoundToHalf(Vector256.ConvertToSingle(f) * d, target + o + 24);
                if (overflow)
                    for (int j = 0; j < 32; j++) target[o + j] = (float)(Half)(scale * ((sbyte*)(source + b + 2))[j]);
            }
        }
    }

    /// <summary>Stores x rounded to the nearest float16 (ties to even) as float32, what <c>(float)(Half)x</c> gives, and
    /// returns whether a lane is beyond float16's finite range (|x| > 65504, inf, NaN: the caller redoes those). Normal
    /// range (|x| ≥ 2⁻¹⁴): drop the 13 low mantissa bits, adding 0xFFF + the kept lowest bit first (round half to even; a
    /// carry into the exponent is the right result). Subnormal range (quantum 2⁻²⁴): (|x| + 0.5) − 0.5 rounds |x| to a
    /// multiple of 2⁻²⁴, the unit of 0.5's float32 binade, in one round-to-nearest-even addition.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static unsafe bool RoundToHalf(Vector256<float> x, float* target)
    {
        var bits = x.AsUInt32();
        var magnitude = bits & Vector256.Create(0x7FFFFFFFu);
        var normal = (bits + Vector256.Create(0x0FFFu) + ((bits >> 13) & Vector256<uint>.One)) & Vector256.Create(0xFFFFE000u);
        var half = Vector256.Create(0.5f);
        var subnormal = ((magnitude.AsSingle() + half) - half).AsUInt32() | (bits & Vector256.Create(0x80000000u));
        var isSubnormal = Vector256.LessThan(magnitude.AsInt32(), Vector256.Create(0x38800000)).AsUInt32();  // |x| < 2⁻¹⁴
        Vector256.ConditionalSelect(isSubnormal, subnormal, normal).AsSingle().Store(target);
        return Vector256.GreaterThanAny(magnitude.AsInt32(), Vector256.Create(0x477FE000));                  // |x| > 65504
    }

    /// <summary>Q4_0 (x = d·(q − 8)) and Q4_1 (x = d·q + m).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Q4<R>(ReadOnlySpan<byte> blocks, Span<float> values, bool hasMin) where R : struct, IRounding
    {
        int size = hasMin ? 20 : 18;
        for (int b = 0, o = 0; b < blocks.Length; b += size, o += 32)
        {
            float d = Half(blocks, b);
            var x = values.Slice(o, 32);
            if (hasMin)
            {
                float m = Half(blocks, b + 2);
                var qs = blocks.Slice(b + 4, 16);
                for (int j = 0; j < 16; j++)
                {
                    x[j] = R.Round(R.Round(d * (qs[j] & 0xF)) + m);
                    x[j + 16] = R.Round(R.Round(d * (qs[j] >> 4)) + m);
                }
            }
            else
            {
                var qs = blocks.Slice(b + 2, 16);
                for (int j = 0; j < 16; j++)
                {
                    x[j] = R.Round(d * ((qs[j] & 0xF) - 8));
                    x[j + 16] = R.Round(d * ((qs[j] >> 4) - 8));
                }
            }
        }
    }

    /// <summary>Q5_0 (x = d·(q − 16)) and Q5_1 (x = d·q + m); qh's bit j is element j's fifth bit.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Q5<R>(ReadOnlySpan<byte> blocks, Span<float> values, bool hasMin) where R : struct, IRounding
    {
        int size = hasMin ? 24 : 22, high = hasMin ? 4 : 2;
        for (int b = 0, o = 0; b < blocks.Length; b += size, o += 32)
        {
            float d = Half(blocks, b);
            float m = hasMin ? Half(blocks, b + 2) : 0;
            uint qh = BinaryPrimitives.ReadUInt32LittleEndian(blocks[(b + high)..]);
            var qs = blocks.Slice(b + high + 4, 16);
            var x = values.Slice(o, 32);
            for (int j = 0; j < 16; j++)
            {
                int lo = (qs[j] & 0xF) | (int)((qh >> j) & 1) << 4;
                int hi = (qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
                if (hasMin)
                {
                    x[j] = R.Round(R.Round(d * lo) + m);
                    x[j + 16] = R.Round(R.Round(d * hi) + m);
                }
                else
                {
                    x[j] = R.Round(d * (lo - 16));
                    x[j + 16] = R.Round(d * (hi - 16));
                }
            }
        }
    }

    /// <summary>Q4_K and Q5_K: eight sub-blocks of 32, each with a 6-bit scale and min packed in 12 bytes
    /// (ggml's get_scale_min_k4: s &lt; 4 from the low 6 bits of bytes s and s+4; s ≥ 4 from the nibbles of byte s+4
    /// and the top 2 bits of bytes s−4 and s).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void QK<R>(ReadOnlySpan<byte> blocks, Span<float> values, bool fifthBit) where R : struct, IRounding
    {
        int size = fifthBit ? 176 : 144, nibbles = fifthBit ? 48 : 16;
        Span<float> scale = stackalloc float[8], offset = stackalloc float[8];
        for (int b = 0, o = 0; b < blocks.Length; b += size, o += 256)
        {
            float d = Half(blocks, b), dmin = Half(blocks, b + 2);
            var packed = blocks.Slice(b + 4, 12);
            for (int s = 0; s < 8; s++)
            {
                int sc = s < 4 ? packed[s] & 0x3F : (packed[s + 4] & 0xF) | ((packed[s - 4] >> 2) & 0x30);
                int mn = s < 4 ? packed[s + 4] & 0x3F : (packed[s + 4] >> 4) | ((packed[s] >> 2) & 0x30);
                scale[s] = R.Round(d * sc);
                offset[s] = R.Round(dmin * mn);
            }
            var qs = blocks.Slice(b + nibbles, 128);
            var qh = fifthBit ? blocks.Slice(b + 16, 32) : default;
            for (int s = 0; s < 8; s++)
            {
                var q = qs.Slice(32 * (s >> 1), 32);
                int shift = 4 * (s & 1);
                var x = values.Slice(o + 32 * s, 32);
                float ds = scale[s], dm = offset[s];
                for (int l = 0; l < 32; l++)
                {
                    int v = (q[l] >> shift) & 0xF;
                    if (fifthBit) v |= ((qh[l] >> s) & 1) << 4;
                    x[l] = R.Round(R.Round(ds * v) - dm);
                }
            }
        }
    }

    /// <summary>Q6_K: element e = 128·h + r takes the nibble of ql[64·h + r mod 64] (high for r ≥ 64) and bits
    /// 2·⌊r/32⌋ of qh[32·h + r mod 32]; q − 32 times d·scale[⌊e/16⌋]. So the bytes ql[64h + l], ql[64h + l + 32] and
    /// qh[32h + l] give the four values r = l, l + 32, l + 64, l + 96.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static void Q6_K<R>(ReadOnlySpan<byte> blocks, Span<float> values) where R : struct, IRounding
    {
        Span<float> scale = stackalloc float[16];
        for (int b = 0, o = 0; b < blocks.Length; b += 210, o += 256)
        {
            var ql = blocks.Slice(b, 128);
            var qh = blocks.Slice(b + 128, 64);
            var sc = MemoryMarshal.Cast<byte, sbyte>(blocks.Slice(b + 192, 16));
            float d = Half(blocks, b + 208);
            for (int i = 0; i < 16; i++) scale[i] = R.Round(d * sc[i]);
            for (int h = 0; h < 2; h++)
            {
                var x = values.Slice(o + 128 * h, 128);
                var s = scale.Slice(8 * h, 8); // 128 values, one scale per 16
                for (int l = 0; l < 32; l++)
                {
                    int low = ql[64 * h + l], next = ql[64 * h + l + 32], high = qh[32 * h + l];
                    int i = l >> 4;
                    x[l] = R.Round(s[i] * (((low & 0xF) | (high & 3) << 4) - 32));
                    x[l + 32] = R.Round(s[i + 2] * (((next & 0xF) | ((high >> 2) & 3) << 4) - 32));
                    x[l + 64] = R.Round(s[i + 4] * (((low >> 4) | ((high >> 4) & 3) << 4) - 32));
                    x[l + 96] = R.Round(s[i + 6] * (((next >> 4) | ((high >> 6) & 3) << 4) - 32));
                }
            }
        }
    }
}
