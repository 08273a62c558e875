using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpDiffusion.Models.UNet;

/// <summary>
/// diffusers' Transformer2DModel for continuous inputs: GroupNorm (eps 1e-6), proj_in (1×1 conv, or Linear with
/// use_linear_projection), transformer blocks over the H·W tokens, proj_out, plus the residual.
/// </summary>
public sealed class Transformer2DModel : Module<Tensor, Tensor, Tensor>
{
    readonly GroupNorm _norm;
    readonly Module<Tensor, Tensor> _projIn, _projOut;
    readonly ModuleList<BasicTransformerBlock> _blocks;
    readonly bool _linearProjection;

    public Transformer2DModel(int inChannels, int heads, int headDim, int layers, int crossAttentionDim, int groups,
        bool useLinearProjection, bool onlyCrossAttention, bool upcastAttention) : base(nameof(Transformer2DModel))
    {
        _linearProjection = useLinearProjection;
        int inner = heads * headDim;
        _norm = Layers.GroupNorm(groups, inChannels, 1e-6);
        _projIn = useLinearProjection ? Layers.Linear(inChannels, inner) : Layers.Conv2d(inChannels, inner, 1);
        _blocks = new ModuleList<BasicTransformerBlock>(Enumerable.Range(0, layers)
            .Select(_ => new BasicTransformerBlock(inner, heads, headDim, crossAttentionDim, onlyCrossAttention, upcastAttention)).ToArray());
        _projOut = useLinearProjection ? Layers.Linear(inner, inChannels) : Layers.Conv2d(inner, inChannels, 1);
        register_module("norm", _norm);
        register_module("proj_in", _projIn);
        register_module("transformer_blocks", _blocks);
        register_module("proj_out", _projOut);
    }

    public override Tensor forward(Tensor x, Tensor context) // x [B, C, H, W], context [B, 77, Cc]
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], h = x.shape[2], w = x.shape[3];
        bool nchw = x.is_contiguous(); // the layout the UNet runs in (see LoadOptions.ChannelsLast), kept on the way out
        var tokens = _norm.call(x);
        tokens = _linearProjection
            ? _projIn.call(ToTokens(tokens))  // [B, HW, inner]
            : ToTokens(_projIn.call(tokens));
        foreach (var block in _blocks)
            tokens = block.call(tokens, context);
        var output = _linearProjection
            ? ToImage(_projOut.call(tokens), h, w, nchw)
            : _projOut.call(ToImage(tokens, h, w, nchw));
        return Reuse.Add(output, x).MoveToOuterDisposeScope();
    }

    static Tensor ToTokens(Tensor t) => t.permute(0, 2, 3, 1).reshape(t.shape[0], t.shape[2] * t.shape[3], t.shape[1]);

    // [B, HW, C] → [B, C, H, W]: channels-last strides are a view (no copy); NCHW takes a copy, as diffusers'
    // .contiguous(), so an NCHW UNet stays NCHW rather than switching its convs to the channels-last path halfway.
    static Tensor ToImage(Tensor t, long h, long w, bool nchw)
    {
        var image = t.reshape(t.shape[0], h, w, t.shape[2]).permute(0, 3, 1, 2);
        return nchw ? image.contiguous() : image;
    }
}
