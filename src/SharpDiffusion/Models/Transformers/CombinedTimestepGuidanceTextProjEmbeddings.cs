using SharpDiffusion.Models.UNet;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpDiffusion.Models.Transformers;

/// <summary>
/// diffusers' CombinedTimestepGuidanceTextProjEmbeddings (Flux.1 dev): the conditioning vector
/// (timestep_embedder(sinusoid₂₅₆(t)) + guidance_embedder(sinusoid₂₅₆(g))) + text_embedder(pooled), the guidance scale g
/// embedded exactly as a timestep (both ×1000 by the caller). Sinusoids [cos | sin] in float32 as
/// <see cref="CombinedTimestepTextProjEmbeddings"/>, which is Flux.1 schnell's (no guidance).
/// </summary>
public sealed class CombinedTimestepGuidanceTextProjEmbeddings : Module<Tensor, Tensor, Tensor, Tensor>
{
    const int TimeProjectionDim = 256;
    readonly TimestepEmbedding _timestepEmbedder, _guidanceEmbedder, _textEmbedder;

    public CombinedTimestepGuidanceTextProjEmbeddings(int dim, int pooledProjectionDim) : base(nameof(CombinedTimestepGuidanceTextProjEmbeddings))
    {
        _timestepEmbedder = new TimestepEmbedding(TimeProjectionDim, dim);
        _guidanceEmbedder = new TimestepEmbedding(TimeProjectionDim, dim);
        _textEmbedder = new TimestepEmbedding(pooledProjectionDim, dim);
        register_module("timestep_embedder", _timestepEmbedder);
        register_module("guidance_embedder", _guidanceEmbedder);
        register_module("text_embedder", _textEmbedder);
    }

    public override Tensor forward(Tensor timestep, Tensor guidance, Tensor pooled) // timestep, guidance [B], pooled [B, P] → [B, D]
    {
        using var scope = NewDisposeScope();
        var t = _timestepEmbedder.call(Sinusoid(timestep).to(pooled.dtype));
        var g = _guidanceEmbedder.call(Sinusoid(guidance).to(pooled.dtype));
        return (t + g + _textEmbedder.call(pooled)).MoveToOuterDisposeScope();
    }

    static Tensor Sinusoid(Tensor t) => TimestepProjection.Embed(t, TimeProjectionDim, flipSinToCos: true, freqShift: 0);
}
