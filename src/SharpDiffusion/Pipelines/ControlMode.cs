namespace SharpDiffusion.Pipelines;

/// <summary>
/// sd-webui-controlnet's control_mode: how a unit's residuals weigh against the prompt under classifier-free guidance.
/// Balanced is diffusers' plain ControlNet. The other two are the extension's soft injection (hook.py): residual i of
/// the 13 of an SD 1.x/2.x ControlNet (12 down, then the mid one) × 0.825^(12 − i), so the shallow ones fade
/// (0.825¹² ≈ 0.099) and the mid one keeps its weight; "ControlNet is more important" adds cfg injection: the
/// unconditional rows get no residuals (× cond_mark), so the guidance pushes towards the control map.
/// </summary>
public enum ControlMode
{
    /// <summary>"Balanced" (0): every residual × the unit's weight, on every row.</summary>
    Balanced,
    /// <summary>"My prompt is more important" (1): soft injection.</summary>
    PromptMoreImportant,
    /// <summary>"ControlNet is more important" (2): soft injection, conditional rows only.</summary>
    ControlNetMoreImportant,
}

public static class ControlModes
{
    static readonly string[] Names = ["Balanced", "My prompt is more important", "ControlNet is more important"];

    /// <summary>The extension's name of the mode, as its API takes it and its infotext writes it ("Control Mode: …").</summary>
    public static string ExtensionName(this ControlMode mode) => Names[(int)mode];

    /// <summary>The extension's name or its value 0/1/2 → the mode; null when it is neither.</summary>
    public static ControlMode? FromExtension(string name) =>
        Array.IndexOf(Names, name) is int i and >= 0 ? (ControlMode)i
        : int.TryParse(name, out int n) && n is >= 0 and <= 2 ? (ControlMode)n
        : null;

    /// <summary>Whether the unit's residuals are zero on the unconditional rows (the extension's cfg_injection).</summary>
    public static bool ConditionalRowsOnly(this ControlMode mode) => mode == ControlMode.ControlNetMoreImportant;

    /// <summary>
    /// The extension's soft-injection factor of each residual (down ones in order, then the mid one), or null for Balanced:
    /// 0.825^(12 − i) for i = 0 … n. The extension builds 13 factors for SD 1.x/2.x (the mid one 1) and keeps the first 10 for
    /// SDXL's 9 + 1 residuals (its mid one then 0.825³); counting i from the shallowest residual gives both.
    /// </summary>
    public static double[]? SoftInjectionScales(this ControlMode mode, int downResiduals) => mode == ControlMode.Balanced
        ? null
        : Enumerable.Range(0, downResiduals + 1).Select(i => Math.Pow(0.825, 12 - i)).ToArray();
}
