using SharpDiffusion.Cli;
using SharpDiffusion.Tuning;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Tuning;

/// <summary>`--dtype auto`: bfloat16 where the CPU has native bf16 (flags injected), float32 elsewhere, and its parsing.</summary>
public class ComputeDTypeTests
{
    static IReadOnlySet<string> Flags(string list) => CpuFlags.Parse(list);

    [Theory]
    [InlineData("fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni", ScalarType.BFloat16, "avx512_bf16")]
    [InlineData("fpu avx2 amx_bf16 amx_tile amx_int8", ScalarType.BFloat16, "amx_bf16")]
    [InlineData("fpu sse2 avx2 fma f16c", ScalarType.Float32, "no avx512_bf16 or amx_bf16")]
    [InlineData("fpu avx2 avx512f avx512bw avx512_vnni", ScalarType.Float32, "no avx512_bf16")] // AVX-512 without BF16
    [InlineData("", ScalarType.Float32, "could not be read")]
    public void Auto_is_bfloat16_only_where_the_cpu_computes_it_natively(string flags, ScalarType expected, string reason)
    {
        var decision = ComputeDType.Auto(Flags(flags));
        Assert.Equal(expected, decision.DType);
        Assert.StartsWith($"dtype auto: {(expected == ScalarType.BFloat16 ? "bfloat16" : "float32")} (", decision.Reason);
        Assert.Contains(reason, decision.Reason);
        Assert.DoesNotContain('\n', decision.Reason);
    }

    [Fact]
    public void The_flags_are_read_from_a_cpuinfo_file()
    {
        using var dir = new TempDir();
        string cpuinfo = dir.File("cpuinfo");
        File.WriteAllText(cpuinfo, "processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu avx2 avx512f avx512_bf16\n\n" +
                                   "processor\t: 1\nflags\t\t: fpu avx2 avx512f avx512_bf16\n");
        var flags = CpuFlags.Read(cpuinfo);
        Assert.Contains("avx512_bf16", flags);
        Assert.Equal(ScalarType.BFloat16, ComputeDType.Auto(flags).DType);
        Assert.Empty(CpuFlags.Read(dir.File("missing")));
    }

    [Fact]
    public void Dtype_auto_asks_the_choice_and_prints_its_reason()
    {
        var printed = new List<string>();
        var native = () => ComputeDType.Auto(Flags("avx2 avx512_bf16"));
        Assert.Equal(ScalarType.BFloat16, FastPathOptions.DType("auto", native, printed.Add));
        Assert.Equal(ScalarType.Float32, FastPathOptions.DType("AUTO", () => ComputeDType.Auto(Flags("avx2")), printed.Add));
        Assert.Equal([native().Reason, ComputeDType.Auto(Flags("avx2")).Reason], printed);
    }

    [Theory]
    [InlineData(null, ScalarType.Float32)] // the default stays float32: goldens and parity tests compare float32
    [InlineData("float32", ScalarType.Float32)]
    [InlineData("bf16", ScalarType.BFloat16)]
    [InlineData("float16", ScalarType.Float16)]
    public void Explicit_dtypes_and_the_default_never_ask_the_cpu(string? value, ScalarType expected)
    {
        var printed = new List<string>();
        Assert.Equal(expected, FastPathOptions.DType(value, () => throw new InvalidOperationException("asked"), printed.Add));
        Assert.Empty(printed);
    }

    [Fact]
    public void An_unknown_dtype_is_a_one_line_usage_error_naming_it()
    {
        var e = Assert.Throws<UsageException>(() => FastPathOptions.DType("float8", ComputeDType.Auto, _ => { }));
        Assert.Contains("'float8'", e.Message);
        Assert.Contains("auto", e.Message);
    }
}
