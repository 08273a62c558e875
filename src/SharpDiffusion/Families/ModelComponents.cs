using SharpDiffusion.Adapters;
using SharpDiffusion.Conditioning;
using SharpDiffusion.Loading;
using SharpDiffusion.Pipelines;
using SharpDiffusion.Schedulers;

namespace SharpDiffusion.Families;

/// <summary>
/// A loaded model as its family assembled it: the text conditioner, the denoiser, the VAE with the latent format, the
/// scheduler config. The pipeline orchestrates these and knows nothing else of the family.
/// </summary>
public sealed class ModelComponents : IDisposable
{
    public required ModelFamily Family { get; init; }
    public required ITextConditioner Conditioner { get; init; }
    public required IDenoiser Denoiser { get; init; }
    public required VaeCodec Vae { get; init; }
    /// <summary>The model's scheduler_config.json; every scheduler is built from it (diffusers' from_config).</summary>
    public required SchedulerConfig SchedulerConfig { get; init; }
    /// <summary>What loading had to assume (e.g. an SD 2.x file's prediction type).</summary>
    public IReadOnlyList<string> LoadWarnings { get; init; } = [];

    public LatentFormat LatentFormat => Vae.Format;

    IEnumerable<ComponentWeights> All => [.. Conditioner.Encoders, Denoiser.Weights, Vae.Weights];

    /// <summary>Every text encoder in memory until the result is disposed (none for a conditioner that reads its encoders
    /// one at a time while it encodes, unless <paramref name="all"/>: a LoRA must be merged into them first).</summary>
    public IDisposable UseTextEncoders(bool all = false) => new Uses(Conditioner.ReadsEncodersOneAtATime && !all ? [] : Conditioner.Encoders);

    /// <summary>Merges <paramref name="loras"/> into the denoiser and text encoders until the result is disposed; weights
    /// that leave memory after the call are not restored (they are read again next time).</summary>
    public LoraMerger MergeLoras(IReadOnlyList<LoraWeight> loras) =>
        LoraMerger.Apply(loras, Denoiser.Weights.Module, Conditioner.Encoders[0].Module, Conditioner.Encoders.ElementAtOrDefault(1)?.Module,
            restores: m => !All.First(w => ReferenceEquals(w.Module, m)).LeavesAfterUse);

    public void Dispose()
    {
        foreach (var encoder in Conditioner.Encoders.Reverse())
            encoder.Module.Dispose();
        Denoiser.Weights.Module.Dispose();
        Vae.Weights.Module.Dispose();
    }

    /// <summary>Several components in use, released in reverse order.</summary>
    sealed class Uses : IDisposable
    {
        readonly List<IDisposable> _uses = [];

        public Uses(IEnumerable<ComponentWeights> weights)
        {
            try { foreach (var w in weights) _uses.Add(w.Use()); }
            catch { Dispose(); throw; }
        }

        public void Dispose()
        {
            for (int i = _uses.Count - 1; i >= 0; i--) _uses[i].Dispose();
            _uses.Clear();
        }
    }
}
