using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace SharpDiffusion.Models.Transformers;

/// <summary>
/// diffusers' PatchEmbed as SD3 configures it: a p×p stride-p convolution turns the latent [B, C, H, W] into
/// (H/p)·(W/p) tokens, to which the centre of a (max × max) position table is added (max = pos_embed_max_size): rows
/// top = (max − H/p) / 2 and columns left = (max − W/p) / 2 onwards. diffusers fills the table with 2-D sin-cos values but
/// registers it as a persistent buffer, so every checkpoint stores it and from_pretrained uses the stored one: it is loaded
/// like a parameter, not recomputed.
/// </summary>
public sealed class PatchEmbed : Module<Tensor, Tensor>, IParameterOwner
{
    readonly Conv2d _proj;
    [ComponentName(Name = "pos_embed")] Parameter _posEmbed; // [1, max², D]
    readonly int _patchSize, _maxSize;

    public PatchEmbed(int patchSize, int inChannels, int dim, int posEmbedMaxSize) : base(nameof(PatchEmbed))
    {
        (_patchSize, _maxSize) = (patchSize, posEmbedMaxSize);
        _proj = Layers.Conv2d(inChannels, dim, patchSize, stride: patchSize);
        _posEmbed = Layers.Parameter([1, (long)posEmbedMaxSize * posEmbedMaxSize, dim], 0.0);
        register_module("proj", _proj);
        register_parameter("pos_embed", _posEmbed);
    }

    /// <summary>The caller checks that H and W are multiples of p and at most max·p.</summary>
    public override Tensor forward(Tensor latent) // [B, C, H, W] → [B, (H/p)·(W/p), D]
    {
        using var scope = NewDisposeScope();
        long h = latent.shape[2] / _patchSize, w = latent.shape[3] / _patchSize;
        var tokens = _proj.call(latent).flatten(2).transpose(1, 2); // [B, h·w, D]
        long top = (_maxSize - h) / 2, left = (_maxSize - w) / 2;
        var table = _posEmbed.view(_maxSize, _maxSize, -1);
        var cropped = table.narrow(0, top, h).narrow(1, left, w).reshape(1, h * w, -1); // [1, h·w, D]
        return (tokens + cropped).to(latent.dtype).MoveToOuterDisposeScope();
    }

    public void SetParameter(string name, Parameter value)
    {
        if (name != "pos_embed") throw new ArgumentException($"PatchEmbed has no parameter '{name}' held outside a layer (only 'pos_embed')");
        _posEmbed.Dispose();
        _posEmbed = (Parameter)value.DetachFromDisposeScope();
        ConditionallyRegisterParameter("pos_embed", _posEmbed);
    }
}
