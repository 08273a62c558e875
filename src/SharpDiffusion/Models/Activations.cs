using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpDiffusion.Models;

/// <summary>The activation functions named in transformers/diffusers configs.</summary>
public static class Activations
{
    public static Func<Tensor, Tensor> ByName(string name) => name switch
    {
        "quick_gelu" => x => QuickGelu(x),
        "gelu" => x => F.gelu(x),
        "gelu_new" or "gelu_pytorch_tanh" => x => F.gelu(x, TorchSharp.Modules.GELU.Approximate.tanh),
        "silu" or "swish" => x => F.silu(x),
        "relu" => x => F.relu(x),
        _ => throw new NotSupportedException($"Activation '{name}' is not supported (quick_gelu, gelu, gelu_new, silu, relu are)"),
    };

    /// <summary>CLIP's quick_gelu: x·σ(1.702x).</summary>
    public static Tensor QuickGelu(Tensor x)
    {
        using var s = sigmoid(x * 1.702);
        return x * s;
    }
}
