using System.Collections.Concurrent;
using SharpDiffusion.Models;
using static TorchSharp.torch;

namespace SharpDiffusion.Tuning;

/// <summary>
/// The fast path on the machine we run on, found by measuring rather than fixed at build time: conv activation
/// layout (NCHW or channels-last) per dtype, the attention kernel per dtype, head size and token-count class, and the
/// float32 linear kernel.
/// Each choice is measured at its first use (<see cref="MicroBenchmarks"/>, about a second each), remembered for the
/// process, and saved in <see cref="FastPathCache"/> under the <see cref="MachineKey"/>, so later runs read it.
/// Only CPU choices are measured; other devices, other dtypes and disabled tuning take the defaults. A cache that
/// cannot be read or written never fails a generation: the first problem is reported once through the warning
/// callback, and the defaults (corrupt file) or this process's measurement (unwritable folder) are used.
/// Thread-safe: jobs running side by side share one instance, and each choice is measured once.
/// </summary>
public sealed class FastPaths
{
    /// <summary>"off" (or 0, false, no) turns measuring off: every choice not forced takes its default.</summary>
    public const string TuningVariable = "SHARPDIFFUSION_TUNING";
    /// <summary>"nchw" or "channels-last": forces the layout, as the load options' ChannelsLast does.</summary>
    public const string LayoutVariable = "SHARPDIFFUSION_LAYOUT";

    /// <summary>Channels-last conv weights (and so activations), the faster fp32 layout on the machine it was chosen on.</summary>
    public const bool DefaultChannelsLast = true;
    public const AttentionKernel DefaultAttention = AttentionKernel.Sdpa;
    /// <summary>F.linear, as nn.Linear computes: kept when tuning is off and when the kernels tie.</summary>
    public const LinearKernel DefaultLinear = LinearKernel.Default;

    static readonly Lazy<FastPaths> Shared = new(() => new FastPaths(FastPathCache.DefaultFolder(),
        enabled: !IsOff(Environment.GetEnvironmentVariable(TuningVariable)), warn: m => Console.Error.WriteLine($"warning: {m}")));

    /// <summary>The process's instance: the user's cache folder, measuring unless SHARPDIFFUSION_TUNING=off.</summary>
    public static FastPaths Default => Shared.Value;

    readonly FastPathCache? _cache;
    readonly MachineKey? _machine;
    readonly Action<string> _warn;
    readonly ConcurrentDictionary<string, Lazy<(CachedChoice Choice, ChoiceSource Source)>> _choices = new();
    readonly Lock _measuring = new(); // one measurement at a time: two at once would time each other
    int _warned;

    /// <param name="cacheFolder">Where the cache file lives; null: measure but do not save.</param>
    /// <param name="enabled">False: no measuring, every choice its default.</param>
    /// <param name="machine">The cache key; null: <see cref="MachineKey.Current"/> at each choice.</param>
    /// <param name="warn">Called at most once, with the first cache problem (one line).</param>
    public FastPaths(string? cacheFolder, bool enabled = true, MachineKey? machine = null, Action<string>? warn = null)
    {
        _cache = cacheFolder is null ? null : new FastPathCache(cacheFolder);
        Enabled = enabled;
        _machine = machine;
        _warn = warn ?? (_ => { });
    }

    public bool Enabled { get; }

    /// <summary>Replaces the micro-benchmarks (tests): the name of the choice → its winner ("nchw", "sdpa", …).</summary>
    internal Func<string, CachedChoice>? MeasureOverride { get; init; }

    /// <summary>Replaces the ResNet-block timing of the layout choice (tests): dtype → seconds per layout.</summary>
    internal Func<ScalarType, LayoutDecision.Timings>? BlockTimingsOverride { get; init; }

    /// <summary>Replaces the 3×3 conv roofline timing of the layout choice (tests): dtype → seconds per layout.</summary>
    internal Func<ScalarType, LayoutDecision.Timings>? ConvTimingsOverride { get; init; }

    /// <summary>Replaces the linear-layer timing of the linear kernel choice (tests): dtype → seconds per kernel.</summary>
    internal Func<ScalarType, LinearDecision.Timings>? LinearTimingsOverride { get; init; }

    /// <summary>Replaces the matmul roofline timing of the linear kernel choice (tests): dtype → seconds per kernel.</summary>
    internal Func<ScalarType, LinearDecision.Timings>? LinearRooflineOverride { get; init; }

    /// <summary>Channels-last: the caller's choice (<paramref name="forced"/>), else $SHARPDIFFUSION_LAYOUT, else measured.</summary>
    public Choice<bool> ChannelsLast(bool? forced, ScalarType dtype, Device device)
    {
        if (forced is bool value) return new(value, ChoiceSource.Forced);
        if (ParseLayout(Environment.GetEnvironmentVariable(LayoutVariable)) is bool fromEnvironment)
            return new(fromEnvironment, ChoiceSource.Forced, $"${LayoutVariable}");
        return ChannelsLast(dtype, device);
    }

    /// <summary>Whether channels-last is the faster layout for <paramref name="dtype"/> on <paramref name="device"/>.</summary>
    public Choice<bool> ChannelsLast(ScalarType dtype, Device device)
    {
        if (!Measurable(dtype, device)) return new(DefaultChannelsLast, ChoiceSource.Default);
        // A layout stored without its basis was chosen by the older rule (the block benchmark alone, a tie giving
        // NCHW): measured again.
        var (choice, source) = Resolve($"layout {Name(dtype)}", () => LayoutDecision.Decide(
            () => BlockTimingsOverride?.Invoke(dtype) ?? MicroBenchmarks.LayoutBlock(dtype),
            () => ConvTimingsOverride?.Invoke(dtype) ?? MicroBenchmarks.LayoutConv(dtype)), stored => stored.Basis is not null);
        return ParseLayout(choice.Value) is bool value ? new(value, source, choice.Detail, choice.Basis ?? "")
            : new(DefaultChannelsLast, ChoiceSource.Default);
    }

    /// <summary>The attention kernel: the caller's choice (<paramref name="forced"/>), else measured per call shape.</summary>
    public AttentionKernelChoice AttentionChoice(AttentionKernel? forced) => forced is AttentionKernel kernel
        ? (_, _) => kernel
        : (q, k) => Attention(q.dtype, q.device, q.shape[3], q.shape[2], k.shape[2]).Value;

    /// <summary>The faster attention kernel for this head size and the token-count classes of the queries and keys.</summary>
    public Choice<AttentionKernel> Attention(ScalarType dtype, Device device, long headDim, long queries, long keys)
    {
        if (!Measurable(dtype, device)) return new(DefaultAttention, ChoiceSource.Default);
        long n = TokenClass(queries), m = TokenClass(keys);
        var (choice, source) = Resolve($"attention {Name(dtype)} d{headDim} q{n} k{m}", () =>
        {
            var r = MicroBenchmarks.Attention(dtype, (int)headDim, n, m);
            return new CachedChoice(r.Winner == AttentionKernel.SlicedMatmul ? "sliced-matmul" : "sdpa", r.Detail,
                r.Clear ? LayoutDecision.Measured : LayoutDecision.Default);
        });
        return choice.Value switch
        {
            "sdpa" => new(AttentionKernel.Sdpa, source, choice.Detail, choice.Basis ?? ""),
            "sliced-matmul" => new(AttentionKernel.SlicedMatmul, source, choice.Detail, choice.Basis ?? ""),
            _ => new(DefaultAttention, ChoiceSource.Default),
        };
    }

    /// <summary>The linear kernel: the caller's choice (<paramref name="forced"/>), else measured for <paramref name="dtype"/>.</summary>
    public Choice<LinearKernel> Linear(LinearKernel? forced, ScalarType dtype, Device device) =>
        forced is LinearKernel kernel ? new(kernel, ChoiceSource.Forced) : Linear(dtype, device);

    /// <summary>The faster linear kernel for <paramref name="dtype"/> on <paramref name="device"/>: measured for float32 on
    /// the CPU (the only case where the kernels differ, <see cref="LinearKernels.Applies"/>), else the default.</summary>
    public Choice<LinearKernel> Linear(ScalarType dtype, Device device)
    {
        if (dtype != ScalarType.Float32 || !Measurable(dtype, device)) return new(DefaultLinear, ChoiceSource.Default);
        var (choice, source) = Resolve($"linear {Name(dtype)}", () => LinearDecision.Decide(
            () => LinearTimingsOverride?.Invoke(dtype) ?? MicroBenchmarks.LinearLayers(dtype),
            () => LinearRooflineOverride?.Invoke(dtype) ?? MicroBenchmarks.LinearRoofline(dtype)));
        return LinearDecision.Parse(choice.Value) is LinearKernel value ? new(value, source, choice.Detail, choice.Basis ?? "")
            : new(DefaultLinear, ChoiceSource.Default);
    }

    /// <summary>Token counts measured as one class: cross-attention's 77, then 256, 1024 and 4096 (64×64 latents;
    /// larger counts behave as it does).</summary>
    public static long TokenClass(long tokens) => tokens <= 128 ? 77 : tokens <= 512 ? 256 : tokens <= 2048 ? 1024 : 4096;

    public static bool? ParseLayout(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        "nchw" or "false" or "0" or "off" or "no" => false,
        "channels-last" or "channels_last" or "nhwc" or "true" or "1" or "on" or "yes" => true,
        _ => null,
    };

    bool Measurable(ScalarType dtype, Device device) =>
        Enabled && device.type == TorchSharp.DeviceType.CPU && dtype is ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16;

    // The cached choice if there is one (and <paramref name="usable"/> accepts it), else a measurement (saved); each
    // name resolved once per machine key.
    (CachedChoice Choice, ChoiceSource Source) Resolve(string name, Func<CachedChoice> measure, Func<CachedChoice, bool>? usable = null)
    {
        var machine = _machine ?? MachineKey.Current();
        return _choices.GetOrAdd($"{machine}|{name}", _ => new(() =>
        {
            if (Stored(machine, out bool corrupt).TryGetValue(name, out var stored) && (usable?.Invoke(stored) ?? true)) return (stored, ChoiceSource.Cached);
            if (corrupt) return (new CachedChoice("default", ""), ChoiceSource.Default);
            CachedChoice measured;
            try
            {
                lock (_measuring) measured = MeasureOverride?.Invoke(name) ?? measure();
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                Warn($"could not measure the fast path '{name}' ({e.Message}); using the default.");
                return (new CachedChoice("default", ""), ChoiceSource.Default);
            }
            try { _cache?.Save(machine, name, measured); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Warn($"could not save the measured fast paths to {_cache!.Path} ({e.Message}); they will be measured again next run.");
            }
            return (measured, ChoiceSource.Measured);
        })).Value;
    }

    IReadOnlyDictionary<string, CachedChoice> Stored(MachineKey machine, out bool corrupt)
    {
        corrupt = false;
        if (_cache is null) return new Dictionary<string, CachedChoice>();
        try { return _cache.Read(machine); }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            Warn($"{e.Message} Using the default fast paths; delete the file to measure them again.");
            corrupt = true;
            return new Dictionary<string, CachedChoice>();
        }
    }

    void Warn(string message)
    {
        if (Interlocked.Exchange(ref _warned, 1) == 0) _warn(message);
    }

    static bool IsOff(string? value) => value?.Trim().ToLowerInvariant() is "off" or "0" or "false" or "no";

    static string Name(ScalarType t) => t switch { ScalarType.BFloat16 => "bfloat16", ScalarType.Float16 => "float16", _ => "float32" };
}
