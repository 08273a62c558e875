using SharpDiffusion.Configuration;
using SharpDiffusion.Models.UNet;
using TorchSharp.Modules;

namespace SharpDiffusion.Tests.Models;

/// <summary>Freshly built models (training, benchmarks) start as PyTorch's would.</summary>
public class LayersTests
{
    [Fact]
    public void Fresh_group_norms_start_at_weight_one_and_bias_zero()
    {
        // TorchSharp itself leaves them uninitialised; garbage there made a fresh VAE produce NaN at once.
        var config = UNet2DConditionConfig.From(JsonConfig.Load(Golden.Path("models", "tiny-sd", "unet", "config.json")));
        using var unet = new UNet2DConditionModel(config);
        var norms = unet.named_modules().Select(m => m.module).OfType<GroupNorm>().Distinct().ToList();
        Assert.NotEmpty(norms);
        Assert.All(norms, n =>
        {
            Assert.True(n.weight!.eq(1).all().item<bool>());
            Assert.True(n.bias!.eq(0).all().item<bool>());
        });
    }
}
