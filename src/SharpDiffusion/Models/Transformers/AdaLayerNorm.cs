using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace SharpDiffusion.Models.Transformers;

/// <summary>The modulation every adaptive layer norm applies: layer_norm(x) · (1 + scale) + shift, one scale and shift per
/// batch row (a LayerNorm without affine parameters, eps 1e-6, as every SD3 norm).</summary>
static class Modulation
{
    public const double Eps = 1e-6;

    public static Tensor Norm(Tensor x) => F.layer_norm(x, [x.shape[^1]], eps: Eps); // [B, N, D]

    public static Tensor Apply(Tensor normed, Tensor shift, Tensor scale) => // normed [B, N, D], shift/scale [B, D]
        normed * (scale.unsqueeze(1) + 1) + shift.unsqueeze(1);
}

/// <summary>What AdaLayerNormZero gives a joint block: the modulated input of the attention and the gate, shift and scale of
/// the rest (each [B, D]); with dual attention (SD35AdaLayerNormZeroX) also the second attention's input and gate.</summary>
public sealed record AdaLayerNormZeroOutput(Tensor Normed, Tensor GateMsa, Tensor ShiftMlp, Tensor ScaleMlp, Tensor GateMlp,
    Tensor? Normed2 = null, Tensor? GateMsa2 = null);

/// <summary>
/// diffusers' AdaLayerNormZero (adaLN-Zero): linear(silu(emb)) split into shift_msa, scale_msa, gate_msa, shift_mlp,
/// scale_mlp, gate_mlp; the input is modulated by the first two. With <c>dual</c> it is SD35AdaLayerNormZeroX (SD3.5's
/// MMDiT-X): three more chunks, shift_msa2, scale_msa2, gate_msa2, modulate the same normed input for the second attention.
/// </summary>
public sealed class AdaLayerNormZero : Module<Tensor, Tensor, AdaLayerNormZeroOutput>
{
    readonly Linear _linear;
    readonly int _chunks;

    public AdaLayerNormZero(int dim, bool dual) : base(dual ? "SD35AdaLayerNormZeroX" : nameof(AdaLayerNormZero))
    {
        _chunks = dual ? 9 : 6;
        _linear = Layers.CompactLinear(dim, _chunks * dim);
        register_module("linear", _linear);
    }

    public override AdaLayerNormZeroOutput forward(Tensor x, Tensor emb) // x [B, N, D], emb [B, D]
    {
        using var scope = NewDisposeScope();
        var c = _linear.call(F.silu(emb)).chunk(_chunks, 1); // each [B, D]
        var normed = Modulation.Norm(x);
        var output = new AdaLayerNormZeroOutput(Modulation.Apply(normed, c[0], c[1]), c[2], c[3], c[4], c[5],
            _chunks == 9 ? Modulation.Apply(normed, c[6], c[7]) : null, _chunks == 9 ? c[8] : null);
        foreach (var t in new[] { output.Normed, output.GateMsa, output.ShiftMlp, output.ScaleMlp, output.GateMlp, output.Normed2, output.GateMsa2 })
            t?.MoveToOuterDisposeScope();
        return output;
    }
}

/// <summary>
/// diffusers' AdaLayerNormContinuous (layer_norm, no affine parameters): [scale | shift] = linear(silu(c)) — scale first,
/// unlike adaLN-Zero — then layer_norm(x) · (1 + scale) + shift. The transformer's norm_out and the last block's context norm.
/// </summary>
public sealed class AdaLayerNormContinuous : Module<Tensor, Tensor, Tensor>
{
    readonly Linear _linear;

    public AdaLayerNormContinuous(int dim, int conditioningDim) : base(nameof(AdaLayerNormContinuous))
    {
        _linear = Layers.CompactLinear(conditioningDim, 2 * dim);
        register_module("linear", _linear);
    }

    public override Tensor forward(Tensor x, Tensor conditioning) // x [B, N, D], conditioning [B, Dc]
    {
        using var scope = NewDisposeScope();
        var c = _linear.call(F.silu(conditioning).to(x.dtype)).chunk(2, 1);
        return Modulation.Apply(Modulation.Norm(x), shift: c[1], scale: c[0]).MoveToOuterDisposeScope();
    }
}
