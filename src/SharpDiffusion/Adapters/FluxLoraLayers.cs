using SharpDiffusion.Loading.SingleFile;
using SharpDiffusion.Models.Transformers;
using static TorchSharp.torch;

namespace SharpDiffusion.Adapters;

/// <summary>
/// Flux LoRAs in BFL's names (kohya's <c>lora_unet_double_blocks_0_img_attn_qkv</c>, <c>lora_unet_single_blocks_0_linear1</c>,
/// as sd-scripts and ComfyUI write them) placed on <see cref="FluxTransformer2DModel"/>'s diffusers weights through
/// <see cref="BflKeyMap"/>: an update of a fused weight ([q | k | v] or [q | k | v | mlp] rows) is split by rows, each part
/// keeping the shared down (ΔW_part = up_part · down); the final modulation's update has its [shift | scale] halves swapped.
/// Layers already in diffusers' names (PEFT <c>transformer.*</c>, kohya <c>lora_transformer_*</c>) pass unchanged.
/// </summary>
static class FluxLoraLayers
{
    public static IEnumerable<LoraLayer> Expand(LoraLayer layer, FluxTransformer2DModel model)
    {
        var config = model.Config;
        foreach (var (bfl, diffusers, split) in BflKeyMap.Expand(config.NumLayers, config.NumSingleLayers))
        {
            if (!bfl.EndsWith(".weight", StringComparison.Ordinal) || Spelling(bfl) != layer.Module) continue;
            var up = layer.Up;                                                               // [rows, r]
            if (split == BflKeyMap.BflSplit.SwapHalves)
            {
                var halves = up.chunk(2, 0);
                yield return layer with { Module = Spelling(diffusers[0]), Up = cat([halves[1], halves[0]], 0) };
                yield break;
            }
            long width = config.InnerDim, start = 0;
            for (int part = 0; part < diffusers.Length; part++)
            {
                long rows = part < diffusers.Length - 1 ? width : up.shape[0] - start;
                if (rows <= 0 || start + rows > up.shape[0])
                    throw new InvalidDataException($"'{layer.SourceKey}' has {up.shape[0]} output rows, too few for {diffusers.Length} parts of {width}: the LoRA is for another Flux size.");
                yield return layer with { Module = Spelling(diffusers[part]), Up = up.narrow(0, start, rows) };
                start += rows;
            }
            yield break;
        }
        yield return layer; // diffusers' names already
    }

    static string Spelling(string weightName) => weightName[..^".weight".Length].Replace('.', '_');
}
