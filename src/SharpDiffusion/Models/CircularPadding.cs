using TorchSharp.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpDiffusion.Models;

/// <summary>
/// AUTOMATIC1111's "Tiling" (seamless textures): every Conv2d of the given networks pads circularly instead of with zeros
/// while the returned scope lives, so the picture is drawn on a torus and its left edge continues into its right, its top
/// into its bottom. Convs without padding are unaffected (as in A1111, whose hijack sets the mode on every Conv2d); so is the
/// VAE encoder's explicit asymmetric zero pad before its stride-2 convs. Setting and restoring the mode is the scope's
/// only effect: one call at a time per loaded model, as the pipeline runs it.
/// </summary>
public static class CircularPadding
{
    public static IDisposable Use(params nn.Module[] networks)
    {
        var changed = networks.SelectMany(n => n.modules()).OfType<Conv2d>()
            .Where(c => c.padding_mode != PaddingModes.Circular)
            .Select(c => (Conv: c, Mode: c.padding_mode)).ToList();
        foreach (var (conv, _) in changed) conv.padding_mode = PaddingModes.Circular;
        return new Restore(changed);
    }

    sealed class Restore(List<(Conv2d Conv, PaddingModes Mode)> changed) : IDisposable
    {
        public void Dispose()
        {
            foreach (var (conv, mode) in changed) conv.padding_mode = mode;
            changed.Clear();
        }
    }
}
