using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SharpDiffusion.Training;

/// <summary>
/// An exponential moving average of named parameters (diffusers' EMAModel with its warm-up): the decay used at
/// step n is min(decay, (1 + n) / (10 + n)), so early averages are not dominated by the random initialisation.
/// </summary>
public sealed class ExponentialMovingAverage : IDisposable
{
    readonly List<(string Name, Parameter Source, Tensor Shadow)> _entries;

    public double Decay { get; }

    public ExponentialMovingAverage(IEnumerable<(string Name, Parameter Parameter)> parameters, double decay)
    {
        Decay = decay;
        using var _ = no_grad();
        _entries = parameters.Select(p => (p.Name, p.Parameter, p.Parameter.detach().clone())).ToList();
    }

    public double DecayAt(long step) => Math.Min(Decay, (1.0 + step) / (10.0 + step));

    public void Update(long step)
    {
        double d = DecayAt(step);
        using var _ = no_grad();
        foreach (var (_, source, shadow) in _entries)
            shadow.mul_(d).add_(source, alpha: 1 - d); // shadow = d·shadow + (1 − d)·θ
    }

    /// <summary>The averaged values by parameter name (views, not copies).</summary>
    public IReadOnlyDictionary<string, Tensor> Shadows => _entries.ToDictionary(e => e.Name, e => e.Shadow);

    /// <summary>Overwrites the averages (a resumed checkpoint).</summary>
    public void Load(IReadOnlyDictionary<string, Tensor> values)
    {
        using var _ = no_grad();
        foreach (var (name, _, shadow) in _entries)
            shadow.copy_(values.TryGetValue(name, out var v) ? v : throw new InvalidDataException($"EMA checkpoint lacks '{name}'"));
    }

    public void Dispose()
    {
        foreach (var e in _entries) e.Shadow.Dispose();
    }
}
