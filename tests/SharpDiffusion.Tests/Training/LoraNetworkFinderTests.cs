using SharpDiffusion.Loading;
using SharpDiffusion.Models;
using SharpDiffusion.Models.Clip;
using SharpDiffusion.Models.UNet;
using SharpDiffusion.Training;
using static TorchSharp.torch;

namespace SharpDiffusion.Tests.Training;

/// <summary>The LoRA trainer's layer finder on our <see cref="Linear"/> layers, with either kernel: a branch on each of the
/// four projections of every UNet <see cref="Attention"/> and every CLIP <see cref="ClipAttention"/> (read from the models),
/// named as kohya names them; the branches' hooks run on those layers (zero-initialised: the output is the base one bit for
/// bit; moved once an up weight is not zero).</summary>
public class LoraNetworkFinderTests
{
    /// <summary>kohya's stems of <paramref name="projections"/> under every module of type <typeparamref name="T"/>.</summary>
    static IEnumerable<string> Stems<T>(nn.Module model, string[] projections, string prefix) => model.named_modules()
        .Where(m => m.module is T && !m.name.Split('.').Any(s => s.StartsWith('_')))
        .SelectMany(m => projections.Select(p => prefix + (m.name + "." + p).Replace('.', '_')));

    [Theory]
    [InlineData(LinearKernel.Default)]
    [InlineData(LinearKernel.OneDnn)]
    public void Finds_every_attention_projection_and_hooks_its_branch(LinearKernel kernel)
    {
        var options = new LoadOptions { Linear = kernel };
        using var unet = ComponentLoader.LoadUNet(Golden.Path("models", "small-sd15", "unet"), options);
        using var encoder = ComponentLoader.LoadTextEncoder(Golden.Path("models", "small-sd15", "text_encoder"), options);
        var golden = Golden.Load("unet", "small-sd15_square.safetensors");
        Tensor Step() => unet.Forward(golden["sample"], 500f, golden["encoder_hidden_states"]);
        using var _ = no_grad();
        using var before = Step();

        using var network = LoraNetwork.Attach(unet, encoder, rank: 2, alpha: 1, seed: 5);
        var expected = Stems<Attention>(unet, LoraNetwork.UNetProjections, "lora_unet_")
            .Concat(Stems<ClipAttention>(encoder, LoraNetwork.TextEncoderProjections, "lora_te_")).Order(StringComparer.Ordinal).ToList();
        Assert.NotEmpty(expected);
        Assert.Equal(expected, network.Layers.Select(l => l.KohyaName).Order(StringComparer.Ordinal).ToList());

        using (var untrained = Step())
            Assert.Equal(0, Golden.MaxAbsDiff(untrained, before)); // a zero branch adds nothing
        foreach (var layer in network.Layers.Where(l => l.Target == SharpDiffusion.Adapters.LoraTarget.Unet)) layer.Up.fill_(0.01);
        using var trained = Step();
        Assert.True(Golden.MaxAbsDiff(trained, before) > 0, "the branches' hooks did not run");
    }
}
