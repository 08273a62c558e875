using SharpDiffusion.Models;
using SharpDiffusion.Tuning;

namespace SharpDiffusion.Cli;

/// <summary>The --channels-last and --attention options of generate, serve, worker and bench: a forced fast path, or
/// auto (null), the one measured faster on this machine.</summary>
public static class FastPathOptions
{
    public static readonly OptionSpec[] Options =
    [
        new("channels-last", OptionKind.Text, "channels-last conv layout: true, false, or auto, the layout measured faster on this machine (default: auto; SHARPDIFFUSION_TUNING=off: true)", "BOOL"),
        new("attention", OptionKind.Text, "attention kernel: sdpa, sliced-matmul, or auto, measured per head size and token count (default: auto; SHARPDIFFUSION_TUNING=off: sdpa)", "NAME"),
    ];

    /// <summary><paramref name="load"/> with the command line's forced choices.</summary>
    public static Loading.LoadOptions Apply(Loading.LoadOptions load, CommandLine cl) =>
        load with { ChannelsLast = ChannelsLast(cl.String("channels-last")), Attention = Attention(cl.String("attention")) };

    public static bool? ChannelsLast(string? value) => value is null || value.Equals("auto", StringComparison.OrdinalIgnoreCase) ? null
        : FastPaths.ParseLayout(value) ?? throw new UsageException($"--channels-last takes true, false or auto; got '{value}'.");

    public static AttentionKernel? Attention(string? value) => value?.ToLowerInvariant() switch
    {
        null or "auto" => null,
        "sdpa" => AttentionKernel.Sdpa,
        "sliced-matmul" or "sliced" => AttentionKernel.SlicedMatmul,
        _ => throw new UsageException($"--attention takes sdpa, sliced-matmul or auto; got '{value}'."),
    };
}
