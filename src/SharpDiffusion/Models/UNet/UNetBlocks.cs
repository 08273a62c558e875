using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpDiffusion.Models.UNet;

/// <summary>Settings every block of one UNet shares.</summary>
public sealed record UNetBlockSettings(int TembChannels, int Groups, double Eps, bool UseLinearProjection, bool UpcastAttention);

/// <summary>The attention settings of one block (diffusers passes them per block).</summary>
public sealed record BlockAttention(int Heads, int Layers, int CrossAttentionDim, bool OnlyCrossAttention);

/// <summary>A down block: resnets (each optionally followed by a transformer), then an optional downsampler.
/// Returns the output and every intermediate state the up path concatenates as a skip.</summary>
public sealed class UNetDownBlock : Module
{
    readonly ModuleList<ResnetBlock2D> _resnets;
    readonly ModuleList<Transformer2DModel>? _attentions;
    readonly ModuleList<Downsample2D>? _downsamplers;

    public int ResnetCount => _resnets.Count;

    /// <param name="attention">null for DownBlock2D, set for CrossAttnDownBlock2D.</param>
    public UNetDownBlock(int inChannels, int outChannels, int layers, bool addDownsample, int downsamplePadding,
        UNetBlockSettings s, BlockAttention? attention) : base(attention is null ? "DownBlock2D" : "CrossAttnDownBlock2D")
    {
        _resnets = new ModuleList<ResnetBlock2D>(Enumerable.Range(0, layers)
            .Select(i => new ResnetBlock2D(i == 0 ? inChannels : outChannels, outChannels, s.TembChannels, s.Groups, s.Eps)).ToArray());
        register_module("resnets", _resnets);
        if (attention is not null)
        {
            _attentions = new ModuleList<Transformer2DModel>(Enumerable.Range(0, layers)
                .Select(_ => NewTransformer(outChannels, attention, s)).ToArray());
            register_module("attentions", _attentions);
        }
        if (addDownsample)
        {
            _downsamplers = new ModuleList<Downsample2D>(new Downsample2D(outChannels, outChannels, downsamplePadding));
            register_module("downsamplers", _downsamplers);
        }
    }

    internal static Transformer2DModel NewTransformer(int channels, BlockAttention a, UNetBlockSettings s) =>
        new(channels, a.Heads, channels / a.Heads, a.Layers, a.CrossAttentionDim, s.Groups, s.UseLinearProjection, a.OnlyCrossAttention, s.UpcastAttention);

    /// <param name="downsample">false: stop before the downsampler (DeepCache's shallow path needs only the resnet outputs).</param>
    public (Tensor Output, List<Tensor> Skips) Forward(Tensor h, Tensor temb, Tensor context, bool downsample = true)
    {
        var skips = new List<Tensor>();
        for (int i = 0; i < _resnets.Count; i++)
        {
            h = _resnets[i].call(h, temb);
            if (_attentions is not null)
            {
                var attended = _attentions[i].call(h, context);
                h.Dispose();
                h = attended;
            }
            skips.Add(h);
        }
        if (_downsamplers is not null && downsample)
        {
            h = _downsamplers[0].call(h);
            skips.Add(h);
        }
        return (h, skips);
    }
}

/// <summary>An up block: each resnet takes the running state concatenated with one skip from the down path
/// (last first), optionally followed by a transformer; then an optional upsampler.</summary>
public sealed class UNetUpBlock : Module
{
    readonly ModuleList<ResnetBlock2D> _resnets;
    readonly ModuleList<Transformer2DModel>? _attentions;
    readonly ModuleList<Upsample2D>? _upsamplers;

    public int ResnetCount => _resnets.Count;

    /// <param name="inChannels">channels of the down block this mirrors' input (the last skip).</param>
    /// <param name="prevOutputChannels">channels coming up from the previous up block.</param>
    public UNetUpBlock(int inChannels, int prevOutputChannels, int outChannels, int layers, bool addUpsample,
        UNetBlockSettings s, BlockAttention? attention) : base(attention is null ? "UpBlock2D" : "CrossAttnUpBlock2D")
    {
        _resnets = new ModuleList<ResnetBlock2D>(Enumerable.Range(0, layers).Select(i =>
        {
            int skipChannels = i == layers - 1 ? inChannels : outChannels;
            int resnetIn = i == 0 ? prevOutputChannels : outChannels;
            return new ResnetBlock2D(resnetIn + skipChannels, outChannels, s.TembChannels, s.Groups, s.Eps);
        }).ToArray());
        register_module("resnets", _resnets);
        if (attention is not null)
        {
            _attentions = new ModuleList<Transformer2DModel>(Enumerable.Range(0, layers)
                .Select(_ => UNetDownBlock.NewTransformer(outChannels, attention, s)).ToArray());
            register_module("attentions", _attentions);
        }
        if (addUpsample)
        {
            _upsamplers = new ModuleList<Upsample2D>(new Upsample2D(outChannels, outChannels));
            register_module("upsamplers", _upsamplers);
        }
    }

    /// <param name="skips">this block's skips, consumed from the end.</param>
    /// <param name="upsampleSize">explicit output size when the latent is not a multiple of the down factor.</param>
    public Tensor Forward(Tensor h, IReadOnlyList<Tensor> skips, Tensor temb, Tensor context, long[]? upsampleSize)
    {
        bool ownsH = false;
        for (int i = 0; i < _resnets.Count; i++)
        {
            using var joined = cat([h, skips[skips.Count - 1 - i]], 1);
            if (ownsH) h.Dispose();
            h = _resnets[i].call(joined, temb);
            if (_attentions is not null)
            {
                var attended = _attentions[i].call(h, context);
                h.Dispose();
                h = attended;
            }
            ownsH = true;
        }
        if (_upsamplers is not null)
        {
            var up = _upsamplers[0].call(h, upsampleSize);
            h.Dispose();
            h = up;
        }
        return h;
    }
}

/// <summary>diffusers' UNetMidBlock2DCrossAttn: resnet, then (transformer, resnet) per layer.</summary>
public sealed class UNetMidBlock2DCrossAttn : Module<Tensor, Tensor, Tensor, Tensor>
{
    readonly ModuleList<ResnetBlock2D> _resnets;
    readonly ModuleList<Transformer2DModel> _attentions;

    public UNetMidBlock2DCrossAttn(int channels, double outputScaleFactor, UNetBlockSettings s, BlockAttention attention, int layers = 1)
        : base(nameof(UNetMidBlock2DCrossAttn))
    {
        _resnets = new ModuleList<ResnetBlock2D>(Enumerable.Range(0, layers + 1)
            .Select(_ => new ResnetBlock2D(channels, channels, s.TembChannels, s.Groups, s.Eps, outputScaleFactor)).ToArray());
        _attentions = new ModuleList<Transformer2DModel>(Enumerable.Range(0, layers)
            .Select(_ => UNetDownBlock.NewTransformer(channels, attention, s)).ToArray());
        register_module("attentions", _attentions);
        register_module("resnets", _resnets);
    }

    public override Tensor forward(Tensor h, Tensor temb, Tensor context)
    {
        h = _resnets[0].call(h, temb);
        for (int i = 0; i < _attentions.Count; i++)
        {
            var attended = _attentions[i].call(h, context);
            h.Dispose();
            h = _resnets[i + 1].call(attended, temb);
            attended.Dispose();
        }
        return h;
    }
}
