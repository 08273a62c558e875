using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SharpDiffusion.Training;

/// <summary>
/// torch.optim.AdamW (Loshchilov &amp; Hutter) over a fixed list of parameters, with its moments as plain named tensors so a
/// checkpoint holds them beside the weights in one atomically written file:
/// θ ← θ·(1 − lr·λ); m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; θ ← θ − lr·(m / (1−β₁ᵗ)) / (√(v / (1−β₂ᵗ)) + ε).
/// </summary>
public sealed class AdamW : IDisposable
{
    readonly IReadOnlyList<Parameter> _parameters;
    readonly Tensor[] _m, _v;
    readonly double _beta1, _beta2, _eps, _weightDecay;

    public int StepCount { get; private set; }

    public AdamW(IReadOnlyList<Parameter> parameters, double weightDecay = 0.01, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8)
    {
        _parameters = parameters;
        (_beta1, _beta2, _eps, _weightDecay) = (beta1, beta2, eps, weightDecay);
        _m = parameters.Select(p => zeros_like(p).detach()).ToArray();
        _v = parameters.Select(p => zeros_like(p).detach()).ToArray();
    }

    public void ZeroGrad()
    {
        foreach (var p in _parameters) p.grad?.zero_();
    }

    /// <summary>One update of every parameter that has a gradient, at the learning rate <paramref name="learningRate"/> gives it.</summary>
    public void Step(Func<Parameter, double> learningRate)
    {
        using var _ = no_grad();
        StepCount++;
        double bias1 = 1 - Math.Pow(_beta1, StepCount), bias2 = 1 - Math.Pow(_beta2, StepCount);
        for (int i = 0; i < _parameters.Count; i++)
        {
            var p = _parameters[i];
            if (p.grad is not { } g) continue;
            double lr = learningRate(p);
            using var scope = NewDisposeScope();
            p.mul_(1 - lr * _weightDecay);
            _m[i].mul_(_beta1).add_(g, alpha: 1 - _beta1);
            _v[i].mul_(_beta2).addcmul_(g, g, value: 1 - _beta2);
            var denominator = (_v[i].sqrt() / Math.Sqrt(bias2)).add_(_eps);
            p.addcdiv_(_m[i], denominator, value: -lr / bias1);
        }
    }

    /// <summary>The moments by "exp_avg.{key}" / "exp_avg_sq.{key}" (torch's names), keys in parameter order.</summary>
    public Dictionary<string, Tensor> State(IReadOnlyList<string> keys)
    {
        var state = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        for (int i = 0; i < keys.Count; i++)
        {
            state["exp_avg." + keys[i]] = _m[i];
            state["exp_avg_sq." + keys[i]] = _v[i];
        }
        return state;
    }

    public void Restore(Loading.SafetensorsFile file, string prefix, IReadOnlyList<string> keys, int stepCount)
    {
        using var _ = no_grad();
        for (int i = 0; i < keys.Count; i++)
            foreach (var (name, target) in new[] { ("exp_avg.", _m[i]), ("exp_avg_sq.", _v[i]) })
            {
                string key = prefix + name + keys[i];
                if (!file.Tensors.ContainsKey(key))
                    throw new InvalidDataException($"{file.Path}: lacks '{key}': not a train-lora checkpoint of this LoRA.");
                using var stored = file.Load(key);
                target.copy_(stored);
            }
        StepCount = stepCount;
    }

    public void Dispose()
    {
        foreach (var t in _m.Concat(_v)) t.Dispose();
    }
}
