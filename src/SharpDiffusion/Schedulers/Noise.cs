using static TorchSharp.torch;

namespace SharpDiffusion.Schedulers;

/// <summary>Gaussian noise for ancestral / SDE steps, drawn the way diffusers' <c>randn_tensor</c> draws it with a
/// CPU generator: on the CPU in float32 (so a seed means the same image on every device), then moved.</summary>
public static class Noise
{
    /// <summary>N(0, I) with the shape of <paramref name="like"/>, on its device and in its dtype.</summary>
    public static Tensor RandnLike(Tensor like, Generator? generator)
    {
        var cpu = randn(like.shape, dtype: ScalarType.Float32, device: CPU, generator: generator);
        if (like.device_type == TorchSharp.DeviceType.CPU && like.dtype == ScalarType.Float32)
            return cpu;
        var moved = cpu.to(like.dtype, like.device);
        cpu.Dispose();
        return moved;
    }
}
