using SharpDiffusion.Models;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpDiffusion.Diagnostics;

/// <summary>
/// Counts the floating-point operations (multiply-add = 2) of convolutions, linear layers and attention
/// matmuls of the given models while it is not disposed. Everything is counted through hooks on those model
/// instances (forward hooks on convs and linears, <see cref="IAttentionModule"/> hooks for q·kᵀ and softmax·v),
/// so counters on different models, or other models running meanwhile on other threads, do not mix.
/// </summary>
public sealed class FlopCounter : IDisposable
{
    readonly List<Action> _removers = [];
    long _conv, _linear, _attention;

    public long Conv => Interlocked.Read(ref _conv);
    public long Linear => Interlocked.Read(ref _linear);
    public long Attention => Interlocked.Read(ref _attention);
    public long Total => Conv + Linear + Attention;

    public FlopCounter(params Module[] models)
    {
        // TorchSharp's named_modules() lists a submodule under its registered name and again under its field
        // name, and leaves out the root: collect each module once.
        var modules = models.SelectMany(m => m.named_modules().Select(x => x.module).Prepend(m)).Distinct();
        foreach (var module in modules)
        {
            switch (module)
            {
                case Conv2d conv:
                    var convHook = conv.register_forward_hook((m, input, output) =>
                    {
                        var w = ((Conv2d)m).weight!.shape; // [out, in/groups, kh, kw]
                        Interlocked.Add(ref _conv, 2 * output.numel() * w[1] * w[2] * w[3]);
                        return output;
                    });
                    _removers.Add(convHook.remove);
                    break;
                case Models.Linear linear: // y [..., out] = x [..., in] Wᵀ: 2·in per output value, whatever the kernel;
                    // a compact weight's dequantization is not counted: FLOPs are the matmul's
                    var linearHook = linear.register_forward_hook((m, input, output) =>
                    {
                        Interlocked.Add(ref _linear, 2 * output.numel() * ((Models.Linear)m).InFeatures);
                        return output;
                    });
                    _removers.Add(linearHook.remove);
                    break;
                case IAttentionModule attention:
                    _removers.Add(attention.RegisterAttentionHook(CountAttention).Dispose);
                    break;
            }
        }
    }

    /// <summary>q [B, H, N, d], k [B, H, M, d] → 2·B·H·N·M·d for each of the two products.</summary>
    void CountAttention(Tensor q, Tensor k) =>
        Interlocked.Add(ref _attention, 4 * q.shape[0] * q.shape[1] * q.shape[2] * k.shape[2] * q.shape[3]);

    public void Dispose()
    {
        foreach (var remove in _removers) remove();
        _removers.Clear();
    }
}
