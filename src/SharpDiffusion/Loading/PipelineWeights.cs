namespace SharpDiffusion.Loading;

/// <summary>The weights of a pipeline's components: resident, or in memory only while each runs (<see cref="LoadOptions.LowMemory"/>).</summary>
public sealed record PipelineWeights(ComponentWeights TextEncoder, ComponentWeights Unet, ComponentWeights Vae, ComponentWeights? TextEncoder2 = null)
{
    /// <summary>Both text encoders (SDXL) or the one, in memory until the result is disposed.</summary>
    public IDisposable UseTextEncoders()
    {
        var first = TextEncoder.Use();
        try { return TextEncoder2 is null ? first : new Both(first, TextEncoder2.Use()); }
        catch { first.Dispose(); throw; }
    }

    /// <summary>The component weights of <paramref name="module"/>, one of this pipeline's.</summary>
    public ComponentWeights Of(TorchSharp.torch.nn.Module module) =>
        new[] { TextEncoder, Unet, Vae, TextEncoder2 }.First(w => w is not null && ReferenceEquals(w.Module, module))!;

    sealed class Both(IDisposable a, IDisposable b) : IDisposable
    {
        public void Dispose()
        {
            b.Dispose();
            a.Dispose();
        }
    }
}
