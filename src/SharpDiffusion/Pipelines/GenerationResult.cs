using static TorchSharp.torch;

namespace SharpDiffusion.Pipelines;

/// <summary>One generated image: RGB bytes, row-major, 3 bytes per pixel, and the parameters that made it.</summary>
public sealed record GeneratedImage(int Width, int Height, byte[] Rgb, string Prompt, string NegativePrompt);

/// <summary>
/// The output of one pipeline call. Images are in pipeline order (prompt-major: all images of prompt 0 first).
/// The tensors are kept for callers that compare with diffusers (and are disposed with the result).
/// </summary>
public sealed class GenerationResult : IDisposable
{
    public required IReadOnlyList<GeneratedImage> Images { get; init; }
    public required long Seed { get; init; }
    /// <summary>The variation seed the call used (A1111's subseed; chosen at random for −1), when its strength was above 0.</summary>
    public long? VariationSeed { get; init; }
    /// <summary>The diffusers class name of the scheduler that ran.</summary>
    public required string SchedulerName { get; init; }
    /// <summary>Its AUTOMATIC1111 name, as infotext writes it ("Euler a", "DPM++ 2M Karras").</summary>
    public required string SamplerName { get; init; }
    /// <summary>AUTOMATIC1111's "Schedule type" when the sampler name does not carry it ("Align Your Steps", "Exponential"), else null.</summary>
    public string? ScheduleType { get; init; }
    /// <summary>The guidance the infotext records, as the denoiser reports it (<see cref="Families.IDenoiser.InfoGuidance"/>);
    /// null: the options' guidance scale.</summary>
    public Families.InfoTextGuidance? InfoGuidance { get; init; }
    /// <summary>What the call changed or ignored and the user should know (a resized mask, a truncated prompt).</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];
    /// <summary>The LoRAs the call applied (given and from prompt tags): name and AUTOMATIC1111 short hash.</summary>
    public IReadOnlyList<(string Name, string Hash)> Loras { get; init; } = [];
    public required int Width { get; init; }
    public required int Height { get; init; }
    /// <summary>Final latents [B, 4, h, w] (before the scaling factor).</summary>
    public required Tensor Latents { get; init; }
    /// <summary>Decoded image in [0, 1], [B, H, W, 3] float32 (diffusers' output_type="np").</summary>
    public required Tensor ImageFloat { get; init; }

    /// <summary>With the hires fix: the first pass's size (A1111's infotext "Size"); the result is the second pass's.</summary>
    public (int Width, int Height)? FirstPassSize { get; init; }

    /// <summary>This second pass's result, taking over its tensors, as the result of a hires fix whose first pass was
    /// <paramref name="first"/> (its size, sampler and warnings are the call's).</summary>
    internal GenerationResult WithFirstPass(GenerationResult first) => new()
    {
        Images = Images,
        Seed = Seed,
        VariationSeed = VariationSeed,
        SchedulerName = first.SchedulerName,
        SamplerName = first.SamplerName,
        ScheduleType = first.ScheduleType,
        InfoGuidance = first.InfoGuidance,
        Warnings = first.Warnings.Concat(Warnings).Distinct().ToList(),
        Loras = Loras,
        Width = Width,
        Height = Height,
        Latents = Latents,
        ImageFloat = ImageFloat,
        FirstPassSize = (first.Width, first.Height),
    };

    public void Dispose()
    {
        Latents.Dispose();
        ImageFloat.Dispose();
    }
}
