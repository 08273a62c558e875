namespace SharpDiffusion.Imaging.ControlPreprocessors;

/// <summary>
/// One slider of a preprocessor as sd-webui-controlnet declares it (<c>PreprocessorParameter</c>): its label, range, step and
/// default. A value outside [Minimum, Maximum] (the API's -1 "not given" among them) means the default, as the extension's
/// <c>bound_check_params</c> resets it.
/// </summary>
public sealed record PreprocessorParameter(string Label, double Minimum, double Maximum, double Step, double Value)
{
    /// <summary>The slider every preprocessor that resizes has: 64-2048 pixels on the short side, default 512.</summary>
    public static readonly PreprocessorParameter Resolution = new("Resolution", 64, 2048, 8, 512);

    /// <summary><paramref name="given"/>, or the default when it is outside the range (or not a number).</summary>
    public double OrDefault(double given) => given >= Minimum && given <= Maximum ? given : Value;

    /// <summary><paramref name="given"/> when in range; otherwise a one-line error naming <paramref name="what"/> (for
    /// callers that should refuse rather than fall back, as the command line).</summary>
    public double Require(double given, string what) => given >= Minimum && given <= Maximum ? given
        : throw new ArgumentException($"{what} ({Label}) must be {Minimum} to {Maximum}; got {given}.");
}
