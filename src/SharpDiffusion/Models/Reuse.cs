using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpDiffusion.Models;

/// <summary>
/// Element-wise steps that overwrite a freshly computed temporary instead of allocating another one: fewer
/// passes over memory in inference. While autograd records (training) they stay out of place, since an
/// in-place write could clobber a tensor saved for the backward pass.
/// </summary>
static class Reuse
{
    /// <summary><paramref name="fresh"/> + <paramref name="other"/>, written into <paramref name="fresh"/> when allowed.</summary>
    public static Tensor Add(Tensor fresh, Tensor other) => is_grad_enabled() ? fresh + other : fresh.add_(other);

    /// <summary><paramref name="fresh"/> · <paramref name="other"/>, written into <paramref name="fresh"/> when allowed.</summary>
    public static Tensor Mul(Tensor fresh, Tensor other) => is_grad_enabled() ? fresh * other : fresh.mul_(other);

    /// <summary>silu(<paramref name="fresh"/>), in place (the same tensor object) when allowed.</summary>
    public static Tensor Silu(Tensor fresh) => is_grad_enabled() ? F.silu(fresh) : fresh.silu_();

    /// <summary>Applies <paramref name="step"/> and frees <paramref name="input"/> right away when it is a
    /// temporary of ours: at 512×512 the VAE's activations are 134 MB each, so a chain of steps that kept every
    /// intermediate until the end of the module would multiply the peak.</summary>
    public static Tensor Then(this Tensor input, Func<Tensor, Tensor> step, bool disposeInput = true)
    {
        var output = step(input);
        if (disposeInput && !ReferenceEquals(output, input)) input.Dispose();
        return output;
    }
}
