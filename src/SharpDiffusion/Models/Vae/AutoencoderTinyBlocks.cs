using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpDiffusion.Models.Vae;

/// <summary>
/// TAESD's residual block (diffusers' AutoencoderTinyBlock): relu(conv(relu(conv(relu(conv(x))))) + x), three 3×3 convs
/// at a constant width (TAESD never changes width inside a block, so the skip is the identity).
/// Keys: <c>conv.0</c>, <c>conv.2</c>, <c>conv.4</c>.
/// </summary>
public sealed class AutoencoderTinyBlock : Module<Tensor, Tensor>
{
    readonly Sequential conv;

    public AutoencoderTinyBlock(long channels) : base(nameof(AutoencoderTinyBlock))
    {
        conv = Sequential(
            Conv2d(channels, channels, 3, padding: 1), ReLU(),
            Conv2d(channels, channels, 3, padding: 1), ReLU(),
            Conv2d(channels, channels, 3, padding: 1));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return functional.relu(conv.call(x) + x).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// diffusers' EncoderTiny: image [B, 3, H, W] in [−1, 1] → latents [B, C, H/f, W/f]. <c>layers</c>: per level a conv
/// (3×3; stride 2 without bias after the first) and its blocks, then a 3×3 conv to the latent channels. The input is
/// mapped to [0, 1] first (TAESD was trained on [0, 1] pictures).
/// </summary>
public sealed class EncoderTiny : Module<Tensor, Tensor>
{
    readonly Sequential layers;

    public EncoderTiny(AutoencoderTinyConfig c) : base(nameof(EncoderTiny))
    {
        var list = new List<Module<Tensor, Tensor>>();
        for (int i = 0; i < c.NumEncoderBlocks.Length; i++)
        {
            long ch = c.EncoderBlockOutChannels[i];
            list.Add(i == 0
                ? Conv2d(c.InChannels, ch, 3, padding: 1)
                : Conv2d(c.EncoderBlockOutChannels[i - 1], ch, 3, stride: 2, padding: 1, bias: false));
            for (int b = 0; b < c.NumEncoderBlocks[i]; b++)
                list.Add(new AutoencoderTinyBlock(ch));
        }
        list.Add(Conv2d(c.EncoderBlockOutChannels[^1], c.LatentChannels, 3, padding: 1));
        layers = Sequential(list);
        RegisterComponents();
    }

    public override Tensor forward(Tensor image)
    {
        using var scope = NewDisposeScope();
        return layers.call(image.add(1).div(2)).MoveToOuterDisposeScope();   // [B, C, H/f, W/f]
    }
}

/// <summary>
/// diffusers' DecoderTiny: latents [B, C, h, w] → image [B, 3, h·f, w·f] in about [−1, 1]. The latents are first
/// soft-clamped to ±3 (tanh(z/3)·3, TAESD's latent_magnitude); <c>layers</c>: a conv and ReLU, then per level its
/// blocks, ×2 nearest upsampling (not after the last) and a conv (with bias only the last, to the RGB channels).
/// </summary>
public sealed class DecoderTiny : Module<Tensor, Tensor>
{
    readonly Sequential layers;

    public DecoderTiny(AutoencoderTinyConfig c) : base(nameof(DecoderTiny))
    {
        var list = new List<Module<Tensor, Tensor>> { Conv2d(c.LatentChannels, c.DecoderBlockOutChannels[0], 3, padding: 1), ReLU() };
        int levels = c.NumDecoderBlocks.Length;
        for (int i = 0; i < levels; i++)
        {
            long ch = c.DecoderBlockOutChannels[i];
            bool last = i == levels - 1;
            for (int b = 0; b < c.NumDecoderBlocks[i]; b++)
                list.Add(new AutoencoderTinyBlock(ch));
            if (!last)
                list.Add(Upsample(scale_factor: [c.UpsamplingScalingFactor, c.UpsamplingScalingFactor], mode: UpsampleMode.Nearest));
            list.Add(Conv2d(ch, last ? c.OutChannels : ch, 3, padding: 1, bias: last));
        }
        layers = Sequential(list);
        RegisterComponents();
    }

    public override Tensor forward(Tensor latents)
    {
        using var scope = NewDisposeScope();
        var z = (latents / 3).tanh() * 3;                  // [B, C, h, w], within ±3
        return layers.call(z).mul(2).sub(1).MoveToOuterDisposeScope();   // [0, 1] → [−1, 1]
    }
}
