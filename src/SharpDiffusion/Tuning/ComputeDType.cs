using static TorchSharp.torch;

namespace SharpDiffusion.Tuning;

/// <summary>
/// `--dtype auto`: bfloat16 on a CPU that computes it natively (AVX512-BF16 or AMX-BF16, where libtorch's oneDNN
/// convs and GEMMs run bf16 at several times the float32 rate), float32 elsewhere (AVX2 only: bf16 is converted
/// to float32 around each kernel and is slower than float32). Decided from the CPU's flags, not measured, so it costs
/// nothing at start-up; the flags are injectable for tests.
/// </summary>
public static class ComputeDType
{
    /// <summary>The /proc/cpuinfo flags that mean native bf16 arithmetic (AVX-512 dot products, AMX tiles).</summary>
    public static readonly string[] NativeBf16Flags = ["avx512_bf16", "amx_bf16"];

    /// <summary>The dtype and the one line that says why ("dtype auto: bfloat16 (this CPU computes bf16 natively: avx512_bf16)").</summary>
    public sealed record Decision(ScalarType DType, string Reason);

    /// <summary>The choice for this machine's CPU.</summary>
    public static Decision Auto() => Auto(CpuFlags.Current());

    /// <summary>The choice for a CPU with <paramref name="flags"/> (empty: unknown, float32).</summary>
    public static Decision Auto(IReadOnlySet<string> flags)
    {
        var native = NativeBf16Flags.Where(flags.Contains).ToList();
        return native.Count > 0
            ? new(ScalarType.BFloat16, $"dtype auto: bfloat16 (this CPU computes bf16 natively: {string.Join(", ", native)})")
            : new(ScalarType.Float32, flags.Count == 0
                ? "dtype auto: float32 (the CPU's flags could not be read, so native bf16 is not known)"
                : $"dtype auto: float32 (this CPU has no native bf16: no {string.Join(" or ", NativeBf16Flags)} flag)");
    }
}
