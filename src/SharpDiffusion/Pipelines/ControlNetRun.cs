using SharpDiffusion.Conditioning;
using SharpDiffusion.Families;
using SharpDiffusion.Imaging;
using SharpDiffusion.Models.ControlNet;
using static TorchSharp.torch;

namespace SharpDiffusion.Pipelines;

/// <summary>
/// The ControlNets of one generation, run inside the denoiser's run before each UNet call (diffusers'
/// StableDiffusion(XL)ControlNetPipeline loop body, for txt2img, img2img and inpainting alike): per unit the control image at
/// the latents' size × the ControlNet's factor, the step's keep (<see cref="ControlNetUnit.Keeps"/>), guess mode on the
/// conditional rows; the residuals of all units summed. Models loaded from a path for this run are freed with it.
/// </summary>
public sealed class ControlNetRun : IDisposable
{
    readonly List<(ControlNetUnit Unit, ControlNetModel Model, bool Owned)> _units = [];
    readonly Dictionary<(int Unit, long Height, long Width), Tensor> _images = [];
    readonly bool _guided;
    readonly ScalarType _dtype;
    readonly IDisposable? _circular;

    /// <param name="load">loads a unit's <see cref="ControlNetUnit.ModelPath"/> (in the UNet's dtype and device).</param>
    /// <param name="guided">the rows are [uncond; cond] (classifier-free guidance batched).</param>
    /// <param name="tiling">A1111's Tiling: the ControlNets' convs pad circularly for the run, as the UNet's do, so their
    /// residuals continue across the edges too (<see cref="Models.CircularPadding"/>).</param>
    public ControlNetRun(IReadOnlyList<ControlNetUnit> units, Func<string, ControlNetModel> load, bool guided, ScalarType dtype, bool tiling = false)
    {
        (_guided, _dtype) = (guided, dtype);
        try
        {
            foreach (var unit in units)
                _units.Add(unit.Model is { } given ? (unit, given, false) : (unit, load(unit.ModelPath!), true));
            if (tiling)
                _circular = Models.CircularPadding.Use(_units.Select(u => (TorchSharp.torch.nn.Module)u.Model).Distinct().ToArray());
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The summed residuals for this UNet call, or null when no unit acts at this step (the plain UNet then).</summary>
    public ControlNetResiduals? Residuals(DenoiserInput input)
    {
        ControlNetResiduals? total = null;
        for (int u = 0; u < _units.Count; u++)
        {
            var (unit, model, _) = _units[u];
            if (!unit.Keeps(input.Step, input.StepCount)) continue; // diffusers runs it at scale 0: residuals exactly 0
            var residuals = Run(u, unit, model, input);
            if (total is null) { total = residuals; continue; }
            var sum = ControlNetResiduals.Sum(total, residuals);
            total.Dispose();
            residuals.Dispose();
            total = sum;
        }
        return total;
    }

    ControlNetResiduals Run(int u, ControlNetUnit unit, ControlNetModel model, DenoiserInput input)
    {
        using var scope = NewDisposeScope();
        var states = input.HiddenStates;                                     // [R, C', h, w]: the UNet's input rows
        long rows = states.shape[0];
        // Inpainting UNets take mask and masked-image channels after the latents; the ControlNet sees the latents alone.
        var sample = states.narrow(1, 0, model.Config.Unet.InChannels);
        var conditioning = input.Conditioning;
        // Guess mode, a global-pool (shuffle) ControlNet (diffusers: guess_mode or global_pool_conditions) and "ControlNet is
        // more important" (the extension's cfg injection × cond_mark): the unconditional rows get no residuals. A ControlNet
        // treats rows independently, so it runs on the conditional half alone.
        bool condOnly = (unit.GuessMode || model.Config.GlobalPoolConditions || unit.ControlMode.ConditionalRowsOnly()) && _guided;
        if (condOnly)
        {
            // diffusers: scale_model_input(latents, t) with prompt_embeds.
            rows /= 2;
            sample = sample.narrow(0, rows, rows);
            conditioning = conditioning.Rows(rows, rows);
        }
        var image = Image(u, unit, model, sample.shape[2], sample.shape[3]).expand(rows, -1, -1, -1); // [rows, 3, H, W]
        using var t = tensor(input.Timestep, ScalarType.Float32, sample.device);
        // Soft injection: weight × 0.825^(12 − i) in one factor per residual, as the extension multiplies (the model at scale 1).
        var soft = unit.ControlMode.SoftInjectionScales(model.Config.ResidualChannels.Count);
        var residuals = model.Forward(sample.to(_dtype), t, conditioning, image, soft is null ? unit.Scale : 1.0, unit.GuessMode);
        if (soft is not null)
            residuals = residuals.Scaled(soft.Select(f => unit.Scale * f).ToArray());
        if (condOnly)
            residuals = residuals.PadRowsBefore(rows);                       // uncond rows: zeros
        return residuals.MoveToOuterDisposeScope();
    }

    /// <summary>diffusers' prepare_image: RGB, resized to the output size (h·f × w·f) with PIL's Lanczos as its image processor
    /// (resample="lanczos"), /255 → [1, 3, H, W] in [0, 1], no 2x−1.</summary>
    Tensor Image(int u, ControlNetUnit unit, ControlNetModel model, long h, long w)
    {
        if (_images.TryGetValue((u, h, w), out var cached)) return cached;
        int f = model.Config.ConditioningFactor;
        var picture = Imaging.PictureResize.Lanczos(unit.Image, (int)(w * f), (int)(h * f));
        var image = ToTensor(picture).to(_dtype, model.parameters().First().device).DetachFromDisposeScope();
        _images[(u, h, w)] = image;
        return image;
    }

    /// <summary>RGB bytes → [1, 3, H, W] float32 in [0, 1].</summary>
    public static Tensor ToTensor(RgbImage picture)
    {
        using var bytes = tensor(picture.Rgb, [1, picture.Height, picture.Width, 3]);
        using var nchw = bytes.permute(0, 3, 1, 2);
        return nchw.to(ScalarType.Float32).div_(255.0);
    }

    public void Dispose()
    {
        _circular?.Dispose(); // a caller's model gets its padding back
        foreach (var image in _images.Values) image.Dispose();
        _images.Clear();
        foreach (var (_, model, owned) in _units)
            if (owned) model.Dispose();
        _units.Clear();
    }
}
