using SharpDiffusion.Models.UNet;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace SharpDiffusion.Models.Vae;

/// <summary>
/// The VAE's spatial self-attention (diffusers' Attention with group_norm, residual_connection, one head of
/// all channels, biased projections): x + to_out(attention(group_norm(x))).
/// </summary>
public sealed class VaeAttention : Module<Tensor, Tensor>, IAttentionModule
{
    readonly GroupNorm _groupNorm;
    readonly Linear _toQ, _toK, _toV, _toOut;
    readonly AttentionHooks _attentionHooks = new();

    public VaeAttention(int channels, int groups, double eps) : base("Attention")
    {
        _groupNorm = Layers.GroupNorm(groups, channels, eps);
        _toQ = Layers.Linear(channels, channels);
        _toK = Layers.Linear(channels, channels);
        _toV = Layers.Linear(channels, channels);
        _toOut = Layers.Linear(channels, channels);
        register_module("group_norm", _groupNorm);
        register_module("to_q", _toQ);
        register_module("to_k", _toK);
        register_module("to_v", _toV);
        register_module("to_out", new ModuleList<Module>(_toOut, Dropout(0.0)));
    }

    public override Tensor forward(Tensor x) // [B, C, H, W]
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
        var tokens = _groupNorm.call(x).view(b, c, h * w).transpose(1, 2); // [B, HW, C]
        Tensor OneHead(Tensor t) => t.unsqueeze(1);                          // [B, 1, HW, C]
        var (q, k, v) = (OneHead(_toQ.call(tokens)), OneHead(_toK.call(tokens)), OneHead(_toV.call(tokens)));
        _attentionHooks.Call(q, k);
        var attended = F.scaled_dot_product_attention(q, k, v);
        var output = _toOut.call(attended.squeeze(1));                      // [B, HW, C]
        output = output.transpose(1, 2).reshape(b, c, h, w);
        return Reuse.Add(output, x).MoveToOuterDisposeScope();
    }

    public IDisposable RegisterAttentionHook(Action<Tensor, Tensor> hook) => _attentionHooks.Add(hook);

    /// <summary>Maps the pre-0.14 diffusers names (query/key/value/proj_attn) that older VAE files still use.</summary>
    public static string RenameLegacyKey(string key) => key
        .Replace(".query.", ".to_q.").Replace(".key.", ".to_k.").Replace(".value.", ".to_v.").Replace(".proj_attn.", ".to_out.0.");
}

/// <summary>diffusers' UNetMidBlock2D without time embedding: resnet, attention, resnet.</summary>
public sealed class VaeMidBlock : Module<Tensor, Tensor>
{
    readonly ModuleList<ResnetBlock2D> _resnets;
    readonly ModuleList<VaeAttention>? _attentions;

    public VaeMidBlock(int channels, int groups, bool addAttention) : base("UNetMidBlock2D")
    {
        const double eps = 1e-6;
        _resnets = new ModuleList<ResnetBlock2D>(new ResnetBlock2D(channels, channels, null, groups, eps), new ResnetBlock2D(channels, channels, null, groups, eps));
        if (addAttention)
        {
            _attentions = new ModuleList<VaeAttention>(new VaeAttention(channels, groups, eps));
            register_module("attentions", _attentions);
        }
        register_module("resnets", _resnets);
    }

    public override Tensor forward(Tensor h)
    {
        using var scope = NewDisposeScope();
        h = _resnets[0].call(h, null);
        if (_attentions is not null)
            h = h.Then(_attentions[0].call);
        return h.Then(t => _resnets[1].call(t, null)).MoveToOuterDisposeScope();
    }
}

/// <summary>DownEncoderBlock2D: resnets, then a padded stride-2 conv (except at the last level).</summary>
public sealed class DownEncoderBlock2D : Module<Tensor, Tensor>
{
    readonly ModuleList<ResnetBlock2D> _resnets;
    readonly ModuleList<Downsample2D>? _downsamplers;

    public DownEncoderBlock2D(int inChannels, int outChannels, int layers, int groups, bool addDownsample) : base(nameof(DownEncoderBlock2D))
    {
        _resnets = new ModuleList<ResnetBlock2D>(Enumerable.Range(0, layers)
            .Select(i => new ResnetBlock2D(i == 0 ? inChannels : outChannels, outChannels, null, groups, 1e-6)).ToArray());
        register_module("resnets", _resnets);
        if (addDownsample)
        {
            _downsamplers = new ModuleList<Downsample2D>(new Downsample2D(outChannels, outChannels, padding: 0));
            register_module("downsamplers", _downsamplers);
        }
    }

    public override Tensor forward(Tensor h)
    {
        using var scope = NewDisposeScope();
        var input = h;
        foreach (var resnet in _resnets) h = h.Then(t => resnet.call(t, null), disposeInput: !ReferenceEquals(h, input));
        if (_downsamplers is not null) h = h.Then(_downsamplers[0].call, disposeInput: !ReferenceEquals(h, input));
        return h.MoveToOuterDisposeScope();
    }
}

/// <summary>UpDecoderBlock2D: resnets, then nearest ×2 and a conv (except at the last level).</summary>
public sealed class UpDecoderBlock2D : Module<Tensor, Tensor>
{
    readonly ModuleList<ResnetBlock2D> _resnets;
    readonly ModuleList<Upsample2D>? _upsamplers;

    public UpDecoderBlock2D(int inChannels, int outChannels, int layers, int groups, bool addUpsample) : base(nameof(UpDecoderBlock2D))
    {
        _resnets = new ModuleList<ResnetBlock2D>(Enumerable.Range(0, layers)
            .Select(i => new ResnetBlock2D(i == 0 ? inChannels : outChannels, outChannels, null, groups, 1e-6)).ToArray());
        register_module("resnets", _resnets);
        if (addUpsample)
        {
            _upsamplers = new ModuleList<Upsample2D>(new Upsample2D(outChannels, outChannels));
            register_module("upsamplers", _upsamplers);
        }
    }

    public override Tensor forward(Tensor h)
    {
        using var scope = NewDisposeScope();
        var input = h;
        foreach (var resnet in _resnets) h = h.Then(t => resnet.call(t, null), disposeInput: !ReferenceEquals(h, input));
        if (_upsamplers is not null) h = h.Then(t => _upsamplers[0].call(t, null), disposeInput: !ReferenceEquals(h, input));
        return h.MoveToOuterDisposeScope();
    }
}
