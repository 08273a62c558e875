using SharpDiffusion.Models.UNet;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpDiffusion.Models.Transformers;

/// <summary>
/// diffusers' CombinedTimestepTextProjEmbeddings, the conditioning vector of every SD3 block:
/// timestep_embedder(sinusoid₂₅₆(t)) + text_embedder(pooled), with the sinusoid [cos | sin] (flip_sin_to_cos, shift 0)
/// computed in float32. text_embedder is PixArtAlphaTextProjection with act "silu": linear_2(silu(linear_1(x))), the same
/// computation (and key names) as TimestepEmbedding, so that class serves for both.
/// </summary>
public sealed class CombinedTimestepTextProjEmbeddings : Module<Tensor, Tensor, Tensor>
{
    const int TimeProjectionDim = 256;
    readonly TimestepEmbedding _timestepEmbedder, _textEmbedder;

    public CombinedTimestepTextProjEmbeddings(int dim, int pooledProjectionDim) : base(nameof(CombinedTimestepTextProjEmbeddings))
    {
        _timestepEmbedder = new TimestepEmbedding(TimeProjectionDim, dim);
        _textEmbedder = new TimestepEmbedding(pooledProjectionDim, dim);
        register_module("timestep_embedder", _timestepEmbedder);
        register_module("text_embedder", _textEmbedder);
    }

    public override Tensor forward(Tensor timestep, Tensor pooled) // timestep [B], pooled [B, P] → [B, D]
    {
        using var scope = NewDisposeScope();
        var projected = TimestepProjection.Embed(timestep, TimeProjectionDim, flipSinToCos: true, freqShift: 0).to(pooled.dtype);
        return (_timestepEmbedder.call(projected) + _textEmbedder.call(pooled)).MoveToOuterDisposeScope();
    }
}
