using System.Diagnostics;
using SharpDiffusion.Models;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpDiffusion.Diagnostics;

/// <summary>What one denoising step spent per op class, in seconds: convolutions, linear layers, the attention products,
/// and the rest (norms, activations, elementwise, reshapes, copies) = the step's wall time less the three.</summary>
public sealed record OpClassTimes(double Conv, double Linear, double Attention, double Step)
{
    public double Rest => Math.Max(0, Step - Conv - Linear - Attention);
}

/// <summary>
/// Times the op classes of the given models while it is not disposed. Convolutions and linear layers by a pre-hook and a
/// hook on each module (libtorch on the CPU runs synchronously, so the time between the two is the kernel's; two hooks
/// cost microseconds against milliseconds of GEMM). The fused attention kernel sits inside a module with its projections
/// and norms, where no hook pair can isolate it: its <see cref="IAttentionModule"/> hook records each call's q/k shapes,
/// dtype and kernel, and <see cref="Result"/> replays each distinct shape once on random q, k, v to time it.
/// </summary>
public sealed class OpClassTimer : IDisposable
{
    readonly List<Action> _removers = [];
    readonly Dictionary<(long B, long H, long N, long M, long D, ScalarType DType, AttentionKernel Kernel), int> _attention = [];
    readonly object _gate = new();
    long _convTicks, _linearTicks;

    public OpClassTimer(params Module[] models)
    {
        var modules = models.SelectMany(m => m.named_modules().Select(x => x.module).Prepend(m)).Distinct(); // each module once
        foreach (var module in modules)
        {
            switch (module)
            {
                case Conv2d conv:
                    Time(conv, ticks => Interlocked.Add(ref _convTicks, ticks));
                    break;
                case Models.Linear linear: // either kernel; a compact weight's dequantization counts as the layer's time
                    Time(linear, ticks => Interlocked.Add(ref _linearTicks, ticks));
                    break;
                case IAttentionModule attention:
                    _removers.Add(attention.RegisterAttentionHook((q, k) =>
                    {
                        var kernel = KernelChoiceOf(module)?.Invoke(q, k) ?? AttentionKernel.Sdpa; // as the module picks it
                        var key = (q.shape[0], q.shape[1], q.shape[2], k.shape[2], q.shape[3], q.dtype, kernel);
                        lock (_gate) _attention[key] = _attention.GetValueOrDefault(key) + 1;
                    }).Dispose);
                    break;
            }
        }
    }

    /// <summary>Seconds in convolutions so far.</summary>
    public double ConvSeconds => Interlocked.Read(ref _convTicks) / (double)Stopwatch.Frequency;

    /// <summary>Seconds in linear layers so far.</summary>
    public double LinearSeconds => Interlocked.Read(ref _linearTicks) / (double)Stopwatch.Frequency;

    /// <summary>The times per step of <paramref name="steps"/> steps that took <paramref name="seconds"/> in all: the attention
    /// calls seen are replayed here (one call per distinct shape, times the number of calls).</summary>
    public OpClassTimes Result(double seconds, int steps)
    {
        double attention = 0;
        using (inference_mode())
            foreach (var ((b, h, n, m, d, dtype, kernel), calls) in _attention)
            {
                using var scope = NewDisposeScope();
                var q = randn([b, h, n, d]).to(dtype);
                var k = randn([b, h, m, d]).to(dtype);
                var v = randn([b, h, m, d]).to(dtype);
                var clock = Stopwatch.StartNew();
                AttentionKernels.Attend(kernel, q, k, v).Dispose();
                attention += clock.Elapsed.TotalSeconds * calls;
            }
        return new OpClassTimes(ConvSeconds / steps, LinearSeconds / steps, attention / steps, seconds / steps);
    }

    void Time(Module<Tensor, Tensor> module, Action<long> add)
    {
        long start = 0; // layers do not nest: one start per module is enough
        var pre = module.register_forward_pre_hook((m, input) =>
        {
            start = Stopwatch.GetTimestamp();
            return input;
        });
        var post = module.register_forward_hook((m, input, output) =>
        {
            add(Stopwatch.GetTimestamp() - start);
            return output;
        });
        _removers.Add(pre.remove);
        _removers.Add(post.remove);
    }

    static AttentionKernelChoice? KernelChoiceOf(Module module) => module switch
    {
        Models.Transformers.JointAttention joint => joint.KernelChoice,
        Models.UNet.Attention attention => attention.KernelChoice,
        _ => null,
    };

    public void Dispose()
    {
        foreach (var remove in _removers) remove();
        _removers.Clear();
    }
}
