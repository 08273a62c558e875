namespace SharpDiffusion.Schedulers;

/// <summary>
/// Align Your Steps (Sabour et al. 2024, research.nvidia.com/labs/toronto-ai/AlignYourSteps): σ schedules optimised
/// for 10 steps, published for SD 1.5 and SDXL only. Other counts interpolate the 11 published noise levels linearly in
/// ln σ (A1111's and ComfyUI's <c>loglinear_interp</c>); the last level becomes 0, as diffusers' <c>AysSchedules</c> and
/// ComfyUI end the schedule, so 10 steps run the published list as it is.
/// </summary>
public static class AlignYourSteps
{
    /// <summary>The published 10-step noise levels (11 σ's from σ_max to the last level) of SD 1.5.</summary>
    public static IReadOnlyList<double> StableDiffusion15 { get; } =
        [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029];

    /// <summary>The published 10-step noise levels of SDXL.</summary>
    public static IReadOnlyList<double> StableDiffusionXL { get; } =
        [14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029];

    /// <summary>Config key naming the published list: <c>sd15</c> or <c>sdxl</c> (<c>--scheduler-option ays_model=sdxl</c>).</summary>
    public const string ModelKey = "ays_model";

    /// <summary>The published list for the model the scheduler config belongs to: <see cref="ModelKey"/> when given; else
    /// SDXL for SDXL's own scheduler config (Euler, "leading" spacing, <c>interpolation_type</c>: what SDXL base and
    /// refiner folders and SDXL single files carry), SD 1.5's otherwise (A1111's default too). A flow-matching config
    /// (SD3, Flux) has no published list: refused in one line.</summary>
    public static IReadOnlyList<double> NoiseLevelsFor(SchedulerConfig config, string scheduler)
    {
        bool flow = config.ClassName?.StartsWith("FlowMatch", StringComparison.Ordinal) == true || config.Has("shift") || config.Has("use_dynamic_shifting");
        string? model = config.GetStringOrNull(ModelKey);
        if (flow)
            throw new ArgumentException($"{scheduler}: Align Your Steps has σ lists for SD 1.5 and SDXL only, not for this flow-matching model (SD3/Flux); use its own flow_euler scheduler or sgm_uniform on an SD model.");
        model ??= config.ClassName == "EulerDiscreteScheduler" && config.Has("interpolation_type")
                  && config.GetString("timestep_spacing", "") == TimestepSpacing.Leading ? "sdxl" : "sd15";
        return model.ToLowerInvariant() switch
        {
            "sd15" or "sd1" or "sd1.5" => StableDiffusion15,
            "sdxl" => StableDiffusionXL,
            _ => throw new ArgumentException($"{scheduler}: {ModelKey} '{model}' has no published Align Your Steps list; use sd15 or sdxl."),
        };
    }

    /// <summary><paramref name="count"/> values log-linearly interpolated from a decreasing list:
    /// ln y at <c>linspace(0, 1, count)</c> interpolated over ln y at <c>linspace(0, 1, len)</c> (A1111's loglinear_interp,
    /// which interpolates the reversed, increasing list: the same line segments). count = len gives the list back.</summary>
    public static double[] LogLinearInterp(IReadOnlyList<double> decreasing, int count)
    {
        var xs = NumPy.Linspace(0, 1, decreasing.Count);
        var ys = decreasing.Reverse().Select(y => Math.Log(y)).ToArray();
        return [.. NumPy.Linspace(0, 1, count).Select(x => Math.Exp(NumPy.Interp(x, xs, ys))).Reverse()];
    }

    /// <summary>The n+1 σ's of an n-step schedule: the published levels interpolated to n+1, the last set to 0.</summary>
    public static double[] Sigmas(IReadOnlyList<double> levels, int n)
    {
        var sigmas = levels.Count == n + 1 ? levels.ToArray() : LogLinearInterp(levels, n + 1);
        sigmas[^1] = 0;
        return sigmas;
    }
}
