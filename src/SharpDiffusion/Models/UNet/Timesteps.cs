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

/// <summary>diffusers' TimestepEmbedding: linear_2(silu(linear_1(x))).</summary>
public sealed class TimestepEmbedding : Module<Tensor, Tensor>
{
    readonly Linear _linear1, _linear2;

    public TimestepEmbedding(int inChannels, int timeEmbedDim) : base(nameof(TimestepEmbedding))
    {
        _linear1 = Layers.Linear(inChannels, timeEmbedDim);
        _linear2 = Layers.Linear(timeEmbedDim, timeEmbedDim);
        register_module("linear_1", _linear1);
        register_module("linear_2", _linear2);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return _linear2.call(F.silu(_linear1.call(x))).MoveToOuterDisposeScope();
    }
}
