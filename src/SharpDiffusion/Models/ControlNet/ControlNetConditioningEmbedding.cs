using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpDiffusion.Models.ControlNet;

/// <summary>
/// diffusers' ControlNetConditioningEmbedding: the control image down to the latent size and the UNet's first width.
/// conv_in 3×3 (channels → w₀), SiLU; per later width wᵢ: conv 3×3 wᵢ₋₁→wᵢ₋₁, SiLU, conv 3×3 stride 2 wᵢ₋₁→wᵢ, SiLU;
/// conv_out 3×3 → embedding channels, no activation (zero-initialised in training, so a new ControlNet starts as a no-op).
/// </summary>
public sealed class ControlNetConditioningEmbedding : Module<Tensor, Tensor>
{
    readonly Conv2d _convIn, _convOut;
    readonly ModuleList<Conv2d> _blocks;

    public ControlNetConditioningEmbedding(int conditioningChannels, int[] widths, int embeddingChannels) : base(nameof(ControlNetConditioningEmbedding))
    {
        _convIn = Layers.Conv2d(conditioningChannels, widths[0], 3, padding: 1);
        var blocks = new List<Conv2d>();
        for (int i = 0; i < widths.Length - 1; i++)
        {
            blocks.Add(Layers.Conv2d(widths[i], widths[i], 3, padding: 1));
            blocks.Add(Layers.Conv2d(widths[i], widths[i + 1], 3, stride: 2, padding: 1));
        }
        _blocks = new ModuleList<Conv2d>(blocks.ToArray());
        _convOut = Layers.Conv2d(widths[^1], embeddingChannels, 3, padding: 1);
        register_module("conv_in", _convIn);
        register_module("blocks", _blocks);
        register_module("conv_out", _convOut);
    }

    public override Tensor forward(Tensor condition) // [B, 3, H, W] → [B, C₀, H/f, W/f]
    {
        using var scope = NewDisposeScope();
        var h = Reuse.Silu(_convIn.call(condition));
        foreach (var block in _blocks)
            h = Reuse.Silu(block.call(h));
        return _convOut.call(h).MoveToOuterDisposeScope();
    }
}
