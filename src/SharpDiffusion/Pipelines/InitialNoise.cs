using static TorchSharp.torch;

namespace SharpDiffusion.Pipelines;

/// <summary>The pipeline's noise draws (initial latents, img2img/inpainting noise), as diffusers' randn_tensor with a CPU
/// generator: one randn call in float32 on the CPU, so a seed means the same image on every device, then moved. A
/// <see cref="SeedVariation"/> (A1111's variation seed, resize seed from) changes the drawn noise, not the generator's stream.</summary>
public static class InitialNoise
{
    public static Tensor Draw(long[] shape, Generator generator, Device device, SeedVariation? variation = null, int spatialFactor = 8)
    {
        using var noise = randn(shape, dtype: ScalarType.Float32, generator: generator);
        if (variation is null) return noise.to(device);
        using var varied = variation.Apply(noise, spatialFactor);
        return varied.to(device);
    }
}
