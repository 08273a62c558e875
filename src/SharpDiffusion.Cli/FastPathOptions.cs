using SharpDiffusion.Models;
using SharpDiffusion.Tuning;
using static TorchSharp.torch;

namespace SharpDiffusion.Cli;

/// <summary>The --channels-last, --attention and --linear options of generate, serve, worker and bench: a forced fast path, or
/// auto (null), the one measured faster on this machine; and --dtype's names, auto among them.</summary>
public static class FastPathOptions
{
    public static readonly OptionSpec[] Options =
    [
        new("channels-last", OptionKind.Text, "channels-last conv layout: true, false, or auto, the layout measured faster on this machine (default: auto; SHARPDIFFUSION_TUNING=off: true)", "BOOL"),
        new("attention", OptionKind.Text, "attention kernel: sdpa, sliced-matmul, or auto, measured per head size and token count (default: auto; SHARPDIFFUSION_TUNING=off: sdpa)", "NAME"),
        new("linear", OptionKind.Text, "float32 kernel of every linear layer (UNet, text encoders, VAE, SD3/Flux, T5): default (F.linear, MKL), onednn (a 1x1 conv), or auto, measured on this machine (default: auto; SHARPDIFFUSION_TUNING=off: default)", "NAME"),
    ];

    /// <summary><paramref name="load"/> with the command line's forced choices.</summary>
    public static Loading.LoadOptions Apply(Loading.LoadOptions load, CommandLine cl) =>
        load with { ChannelsLast = ChannelsLast(cl.String("channels-last")), Attention = Attention(cl.String("attention")), Linear = Linear(cl.String("linear")) };

    public static bool? ChannelsLast(string? value) => value is null || value.Equals("auto", StringComparison.OrdinalIgnoreCase) ? null
        : FastPaths.ParseLayout(value) ?? throw new UsageException($"--channels-last takes true, false or auto; got '{value}'.");

    public static AttentionKernel? Attention(string? value) => value?.ToLowerInvariant() switch
    {
        null or "auto" => null,
        "sdpa" => AttentionKernel.Sdpa,
        "sliced-matmul" or "sliced" => AttentionKernel.SlicedMatmul,
        _ => throw new UsageException($"--attention takes sdpa, sliced-matmul or auto; got '{value}'."),
    };

    public static LinearKernel? Linear(string? value) => value is null || value.Equals("auto", StringComparison.OrdinalIgnoreCase) ? null
        : LinearDecision.Parse(value) ?? throw new UsageException($"--linear takes default, onednn or auto; got '{value}'.");

    /// <summary>The help of generate's, serve's and worker's --dtype.</summary>
    public const string DTypeHelp = "float32, bfloat16, float16, or auto: bfloat16 on a CPU that computes it natively (AVX512-BF16, AMX), float32 elsewhere (default: float32)";

    static int _autoPrinted;

    /// <summary>--dtype's value: float32 when not given; auto decided by the CPU's flags, its reason printed once per process.</summary>
    public static ScalarType DType(string? value) => DType(value, ComputeDType.Auto, line =>
    {
        if (Interlocked.Exchange(ref _autoPrinted, 1) == 0) Progress.Line(line);
    });

    /// <summary>--dtype's value with the auto choice and its printing given (tests inject a CPU's flags).</summary>
    public static ScalarType DType(string? value, Func<ComputeDType.Decision> auto, Action<string> print)
    {
        switch (value?.Trim().ToLowerInvariant())
        {
            case null or "float32" or "fp32": return ScalarType.Float32;
            case "bfloat16" or "bf16": return ScalarType.BFloat16;
            case "float16" or "fp16": return ScalarType.Float16;
            case "auto":
                var decision = auto();
                print(decision.Reason);
                return decision.DType;
            default: throw new UsageException($"--dtype must be float32, bfloat16, float16 or auto; got '{value}'.");
        }
    }
}
