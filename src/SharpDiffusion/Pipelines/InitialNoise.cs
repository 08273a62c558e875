using static TorchSharp.torch;

namespace SharpDiffusion.Pipelines;

/// <summary>The pipeline's noise draws (initial latents, img2img/inpainting noise), as diffusers' randn_tensor with a CPU
/// generator: one randn call in float32 on the CPU, so a seed means the same image on every device, then moved.</summary>
public static class InitialNoise
{
    public static Tensor Draw(long[] shape, Generator generator, Device device)
    {
        using var noise = randn(shape, dtype: ScalarType.Float32, generator: generator);
        return noise.to(device);
    }
}
