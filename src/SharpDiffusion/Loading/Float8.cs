namespace SharpDiffusion.Loading;

/// <summary>
/// The two float8 formats safetensors stores (TorchSharp has no float8 type): each byte is decoded through a
/// 256-entry table to the float32 it stands for, as torch's <c>.to(torch.float32)</c> gives it.
/// <list type="bullet">
/// <item><c>F8_E4M3</c> (torch.float8_e4m3fn): sign, 4 exponent bits (bias 7), 3 mantissa bits; no infinities,
/// S.1111.111 is NaN; exponent 0 is subnormal: m/8 · 2⁻⁶; otherwise (1 + m/8) · 2^(e−7). Largest finite ±448.</item>
/// <item><c>F8_E5M2</c> (torch.float8_e5m2): the upper byte of an IEEE float16 (bias 15, 2 mantissa bits;
/// exponent 31 is ±inf with m = 0, NaN otherwise). Largest finite ±57344.</item>
/// </list>
/// </summary>
public static class Float8
{
    /// <summary>Byte → float32 for float8_e4m3fn.</summary>
    public static IReadOnlyList<float> E4M3FnValues => E4M3Fn;

    /// <summary>Byte → float32 for float8_e5m2.</summary>
    public static IReadOnlyList<float> E5M2Values => E5M2;

    internal static readonly float[] E4M3Fn = BuildE4M3Fn();
    internal static readonly float[] E5M2 = BuildE5M2();

    /// <summary>The decode table of a safetensors float8 dtype (<c>F8_E4M3</c>, <c>F8_E5M2</c>), or null for any other.</summary>
    public static float[]? TableFor(string safetensorsDType) => safetensorsDType switch
    {
        "F8_E4M3" => E4M3Fn,
        "F8_E5M2" => E5M2,
        _ => null,
    };

    /// <summary>Decodes <paramref name="bytes"/> into as many floats.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public static unsafe void Decode(ReadOnlySpan<byte> bytes, Span<float> values, float[] table)
    {
        if (values.Length < bytes.Length)
            throw new ArgumentException($"Float8.Decode: {bytes.Length} bytes need as many floats; the destination has {values.Length}.");
        if (table.Length != 256)
            throw new ArgumentException($"Float8.Decode: a decode table has 256 entries, not {table.Length}.");
        // Pointers: a byte always indexes the 256-entry table, so the per-element bounds checks are dead weight.
        fixed (byte* source = bytes)
        fixed (float* target = values, lookup = table)
            for (int i = 0; i < bytes.Length; i++)
                target[i] = lookup[source[i]];
    }

    static float[] BuildE4M3Fn()
    {
        var table = new float[256];
        for (int b = 0; b < 256; b++)
        {
            int exponent = (b >> 3) & 0xF, mantissa = b & 0x7;
            float magnitude = exponent == 0xF && mantissa == 0x7 ? float.NaN
                : exponent == 0 ? MathF.ScaleB(mantissa / 8f, -6)
                : MathF.ScaleB(1 + mantissa / 8f, exponent - 7);
            table[b] = (b & 0x80) != 0 ? -magnitude : magnitude;
        }
        return table;
    }

    static float[] BuildE5M2()
    {
        var table = new float[256];
        for (int b = 0; b < 256; b++)
            table[b] = (float)BitConverter.UInt16BitsToHalf((ushort)(b << 8));
        return table;
    }
}
