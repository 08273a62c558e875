using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpDiffusion.Diagnostics;

/// <summary>
/// Counts the floating-point operations (multiply-add = 2) of convolutions, linear layers and attention
/// matmuls while it is active. Convs and linears are counted by forward hooks; attention modules report
/// their q·kᵀ and softmax·v products through <see cref="AddAttention"/>.
/// </summary>
public sealed class FlopCounter : IDisposable
{
    static FlopCounter? _active;
    readonly List<Action> _removers = [];

    public long Conv { get; private set; }
    public long Linear { get; private set; }
    public long Attention { get; private set; }
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
                        var c = (Conv2d)m;
                        var w = c.weight!.shape; // [out, in/groups, kh, kw]
                        Conv += 2 * output.numel() * w[1] * w[2] * w[3];
                        return output;
                    });
                    _removers.Add(convHook.remove);
                    break;
                case TorchSharp.Modules.Linear linear:
                    var linearHook = linear.register_forward_hook((m, input, output) =>
                    {
                        Linear += 2 * output.numel() * ((TorchSharp.Modules.Linear)m).weight!.shape[1];
                        return output;
                    });
                    _removers.Add(linearHook.remove);
                    break;
            }
        }
        _active = this;
    }

    /// <summary>Called by attention modules: q [B, H, N, d], k [B, H, M, d] → 2·B·H·N·M·d for each of the two products.</summary>
    public static void AddAttention(Tensor q, Tensor k)
    {
        var counter = _active;
        if (counter is null) return;
        counter.Attention += 4 * q.shape[0] * q.shape[1] * q.shape[2] * k.shape[2] * q.shape[3];
    }

    public void Dispose()
    {
        foreach (var remove in _removers) remove();
        if (ReferenceEquals(_active, this)) _active = null;
    }
}
