using SharpDiffusion.Diagnostics;
using SharpDiffusion.Loading;
using SharpDiffusion.Models;
using SharpDiffusion.Models.UNet;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Diagnostics;

/// <summary>The FLOP counter's linear class on an SD 1.x/2.x UNet, with either kernel: every linear layer of the model
/// (time embedding, resnet time projections, attention projections, feed-forwards, linear proj_in/proj_out) counted as
/// 2·rows·in·out, the rows following from where the layer sits: the batch for the time embeddings, the text tokens for
/// cross-attention's keys and values, the latent positions of its level for the rest.</summary>
public class FlopCounterUNetLinearTests(ITestOutputHelper output)
{
    const long Batch = 2, Height = 16, Width = 12, TextTokens = 5;

    /// <summary>Each linear layer once, under its state-dict path (TorchSharp also lists it under its field name, "_toQ").</summary>
    internal static List<(string Path, Linear Layer)> LinearLayers(nn.Module model) => model.named_modules()
        .Where(m => m.module is Linear && !m.name.Split('.').Any(s => s.StartsWith('_')))
        .DistinctBy(m => m.module, ReferenceEqualityComparer.Instance)
        .Select(m => (m.name, (Linear)m.module)).ToList();

    /// <summary>The linear FLOPs of one forward, from the layers' shapes and where they sit in the UNet.</summary>
    static long ExpectedLinearFlops(UNet2DConditionModel unet)
    {
        int levels = unet.Config.BlockOutChannels.Length;
        var (h, w) = (new long[levels], new long[levels]);
        (h[0], w[0]) = (Height, Width);
        for (int i = 1; i < levels; i++) (h[i], w[i]) = ((h[i - 1] + 1) / 2, (w[i - 1] + 1) / 2); // 3×3 stride-2 pad-1 downsample
        int Level(string[] path) => path[0] switch
        {
            "down_blocks" => int.Parse(path[1]),
            "mid_block" => levels - 1,
            "up_blocks" => levels - 1 - int.Parse(path[1]),
            _ => throw new InvalidOperationException($"a linear layer outside the blocks: {string.Join('.', path)}"),
        };
        long flops = 0;
        foreach (var (path, layer) in LinearLayers(unet))
        {
            var parts = path.Split('.');
            long rows = path.StartsWith("time_embedding.", StringComparison.Ordinal) || parts[^1] == "time_emb_proj" ? Batch
                : parts[^2] == "attn2" && parts[^1] is "to_k" or "to_v" ? Batch * TextTokens
                : Batch * h[Level(parts)] * w[Level(parts)];
            flops += 2 * rows * layer.weight.shape[1] * layer.weight.shape[0]; // weight [out, in]
        }
        return flops;
    }

    [Theory]
    [InlineData("small-sd15", LinearKernel.Default)]
    [InlineData("small-sd15", LinearKernel.OneDnn)]
    [InlineData("tiny-sd2", LinearKernel.OneDnn)] // linear proj_in/proj_out
    public void Counts_every_linear_layer_of_a_unet(string model, LinearKernel kernel)
    {
        using var unet = ComponentLoader.LoadUNet(Golden.Path("models", model, "unet"), new LoadOptions { Linear = kernel });
        using var _ = inference_mode();
        using var latents = randn(Batch, unet.Config.InChannels, Height, Width);
        using var context = randn(Batch, TextTokens, unet.Config.CrossAttentionDim[0]);
        long expected = ExpectedLinearFlops(unet);
        using var counter = new FlopCounter(unet);
        unet.Forward(latents, 500f, context).Dispose();

        Assert.True(expected > 0);
        Assert.Equal(expected, counter.Linear);
        output.WriteLine($"{model}, {SharpDiffusion.Tuning.LinearDecision.Name(kernel)}: {LinearLayers(unet).Count} linear layers, {counter.Linear} FLOPs (conv {counter.Conv}, attention {counter.Attention})");
    }
}
