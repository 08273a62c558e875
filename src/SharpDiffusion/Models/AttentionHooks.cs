using System.Collections.Immutable;
using static TorchSharp.torch;

namespace SharpDiffusion.Models;

/// <summary>
/// A module whose attention products softmax(q·kᵀ/√d)·v run inside one fused call (scaled_dot_product_attention),
/// where forward hooks on its layers cannot see them. An observer, such as the FLOP counter, registers here for
/// the shapes of q and k, on this module instance only.
/// </summary>
public interface IAttentionModule
{
    /// <summary>Calls <paramref name="hook"/> with q [B, H, N, d] and k [B, H, M, d] on every forward of this module
    /// until the returned handle is disposed.</summary>
    IDisposable RegisterAttentionHook(Action<Tensor, Tensor> hook);
}

/// <summary>The hooks of one attention module: added and removed on any thread, called on the forward's.</summary>
sealed class AttentionHooks
{
    ImmutableArray<Action<Tensor, Tensor>> _hooks = [];

    public IDisposable Add(Action<Tensor, Tensor> hook)
    {
        ImmutableInterlocked.Update(ref _hooks, hooks => hooks.Add(hook));
        return new Removal(() => ImmutableInterlocked.Update(ref _hooks, hooks => hooks.Remove(hook)));
    }

    public void Call(Tensor q, Tensor k)
    {
        foreach (var hook in _hooks) hook(q, k);
    }

    sealed class Removal(Action remove) : IDisposable
    {
        int _done;
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) == 0) remove();
        }
    }
}
