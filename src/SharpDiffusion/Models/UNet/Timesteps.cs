using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace SharpDiffusion.Models.UNet;

/// <summary>
/// The sinusoidal timestep embedding (diffusers' get_timestep_embedding), computed in float32:
/// freq_i = exp(-ln(10000)·i / (half − freq_shift)), emb = [sin(t·freq) | cos(t·freq)], or [cos | sin] with flip_sin_to_cos.
/// Timesteps may be fractional (LMS/Euler pass e.g. 832.5).
/// </summary>
public static class TimestepProjection
{
    public static Tensor Embed(Tensor timesteps, int dim, bool flipSinToCos, double freqShift) // [B] → [B, dim]
    {
        using var scope = NewDisposeScope();
        int half = dim / 2;
        var exponent = arange(0, half, dtype: ScalarType.Float32, device: timesteps.device) * (-Math.Log(10000.0));
        exponent = exponent / (half - freqShift);
        var args = timesteps.to(ScalarType.Float32).unsqueeze(1) * exponent.exp().unsqueeze(0); // [B, half]
        var emb = flipSinToCos ? cat([args.cos(), args.sin()], 1) : cat([args.sin(), args.cos()], 1);
        if (dim % 2 == 1)
            emb = F.pad(emb, [0, 1, 0, 0]);
        return emb.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// diffusers' <c>get_guidance_scale_embedding</c> (LCM, arXiv 2310.04378): the guidance weight w as a sinusoid,
/// freq_i = exp(-ln(10000)·i / (half − 1)), emb = [sin(1000·w·freq) | cos(1000·w·freq)], float32. The LCM pipeline passes
/// w = guidance_scale − 1 with <c>embedding_dim = time_cond_proj_dim</c> as the UNet's <c>timestep_cond</c>.
/// </summary>
public static class GuidanceScaleEmbedding
{
    public static Tensor Embed(Tensor w, int dim) // [B] → [B, dim]
    {
        using var scope = NewDisposeScope();
        int half = dim / 2;
        var freq = (arange(0, half, dtype: ScalarType.Float32, device: w.device) * (float)(-Math.Log(10000.0) / (half - 1))).exp();
        var args = (w.to(ScalarType.Float32) * 1000f).unsqueeze(1) * freq.unsqueeze(0); // [B, half]
        var emb = cat([args.sin(), args.cos()], 1);
        if (dim % 2 == 1)
            emb = F.pad(emb, [0, 1, 0, 0]);
        return emb.MoveToOuterDisposeScope();
    }
}

/// <summary>diffusers' TimestepEmbedding: linear_2(silu(linear_1(x + cond_proj(c)))), the <c>cond_proj</c> term (a
/// bias-free linear from <c>time_cond_proj_dim</c>) only in LCM-distilled UNets, fed the guidance embedding.</summary>
public sealed class TimestepEmbedding : Module<Tensor, Tensor>
{
    readonly Linear _linear1, _linear2;
    readonly Linear? _condProj;

    public TimestepEmbedding(int inChannels, int timeEmbedDim, int condProjDim = 0) : base(nameof(TimestepEmbedding))
    {
        _linear1 = Layers.Linear(inChannels, timeEmbedDim);
        _linear2 = Layers.Linear(timeEmbedDim, timeEmbedDim);
        register_module("linear_1", _linear1);
        register_module("linear_2", _linear2);
        if (condProjDim > 0)
        {
            _condProj = Layers.Linear(condProjDim, inChannels, hasBias: false);
            register_module("cond_proj", _condProj);
        }
    }

    /// <summary>Whether the embedding takes a <c>timestep_cond</c> (<see cref="Forward(Tensor, Tensor?)"/>).</summary>
    public bool HasCondProj => _condProj is not null;

    public override Tensor forward(Tensor x) => Forward(x, null);

    /// <param name="x">[B, in] sinusoidal timestep embedding.</param>
    /// <param name="condition">[B, time_cond_proj_dim] (<see cref="GuidanceScaleEmbedding"/>), or null.</param>
    public Tensor Forward(Tensor x, Tensor? condition)
    {
        using var scope = NewDisposeScope();
        if (condition is not null)
        {
            if (_condProj is null)
                throw new ArgumentException("This UNet has no time_cond_proj_dim: it takes no timestep_cond (guidance embedding); only LCM-distilled UNets do.");
            x = x + _condProj.call(condition.to(x.dtype));
        }
        return _linear2.call(F.silu(_linear1.call(x))).MoveToOuterDisposeScope();
    }
}
