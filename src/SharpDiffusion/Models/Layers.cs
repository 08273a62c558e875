using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SharpDiffusion.Models;

/// <summary>
/// The layer constructors every model uses, so a loader can build a model where its parameters cost nothing:
/// inside <see cref="Placement"/> with the <c>meta</c> device, layers get shape-only parameters (no memory, no
/// random initialisation) that loading then replaces with the stored weights, already in the compute dtype.
/// The placement is per thread, so parallel code elsewhere is unaffected.
/// </summary>
public static class Layers
{
    [ThreadStatic] static Device? _device;
    [ThreadStatic] static ScalarType? _dtype;

    /// <summary>Layers built on this thread until the result is disposed go to <paramref name="device"/>.</summary>
    public static IDisposable Placement(Device? device, ScalarType? dtype = null)
    {
        var previous = (_device, _dtype);
        (_device, _dtype) = (device, dtype);
        return new Restore(() => (_device, _dtype) = previous);
    }

    /// <summary>torch.nn.Linear, as our <see cref="Models.Linear"/>: it takes the load options' kernel choice
    /// (<see cref="LinearKernel"/>) and always holds a float weight in the compute dtype (the UNet's, CLIP's, the VAE's layers).</summary>
    public static Linear Linear(long inFeatures, long outFeatures, bool hasBias = true) =>
        new(inFeatures, outFeatures, hasBias, compactCapable: false, _device, _dtype);

    /// <summary>A <see cref="Models.Linear"/> whose weight may stay compact (float8, GGUF, half precision) and be dequantized
    /// per call: for the large weights of the models that come in such files (Flux, SD3, T5). Loading decides, from the
    /// stored type.</summary>
    public static Linear CompactLinear(long inFeatures, long outFeatures, bool hasBias = true) =>
        new(inFeatures, outFeatures, hasBias, compactCapable: true, _device, _dtype);

    public static Conv2d Conv2d(long inChannels, long outChannels, long kernelSize, long stride = 1, long padding = 0) =>
        nn.Conv2d(inChannels, outChannels, kernelSize, stride: stride, padding: padding, device: _device, dtype: _dtype);

    /// <summary>TorchSharp 0.107 leaves GroupNorm's affine parameters uninitialised (torch.empty: garbage, NaN,
    /// denormals); PyTorch starts them at weight 1, bias 0, and so do we. Loading overwrites them anyway.</summary>
    public static GroupNorm GroupNorm(long groups, long channels, double eps)
    {
        var norm = nn.GroupNorm(groups, channels, eps, device: _device, dtype: _dtype);
        using (no_grad())
        {
            norm.weight?.fill_(1.0);
            norm.bias?.zero_();
        }
        return norm;
    }

    public static LayerNorm LayerNorm(long dim, double eps) =>
        nn.LayerNorm(dim, eps, device: _device, dtype: _dtype);

    public static Embedding Embedding(long count, long dim) =>
        nn.Embedding(count, dim, device: _device, dtype: _dtype);

    /// <summary>A parameter that a module of ours holds itself (an RMS norm's scale, a position table), filled with
    /// <paramref name="value"/>; shape-only on the meta device like every other layer's.</summary>
    public static Parameter Parameter(long[] shape, double value)
    {
        using var values = full(shape, value, dtype: _dtype, device: _device);
        return new Parameter(values);
    }

    sealed class Restore(Action restore) : IDisposable
    {
        public void Dispose() => restore();
    }
}
