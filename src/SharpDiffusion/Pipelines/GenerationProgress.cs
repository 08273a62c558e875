namespace SharpDiffusion.Pipelines;

/// <summary>Where a generation is: the stages in the order they happen.</summary>
public enum GenerationStage
{
    /// <summary>Prompts → text embeddings (and, for img2img/inpainting, the image → latents).</summary>
    Encoding,
    /// <summary>The denoising loop; <see cref="GenerationProgress.Step"/> counts denoiser steps done.</summary>
    Denoising,
    /// <summary>Latents → pixels.</summary>
    Decoding,
    Done,
}

/// <summary>What the pipeline reports as it works.</summary>
public sealed record GenerationProgress(GenerationStage Stage, int Step, int TotalSteps, TimeSpan Elapsed);

/// <summary>An <see cref="IProgress{T}"/> that calls its action on the reporting thread, in order
/// (unlike <see cref="Progress{T}"/>, which posts to a synchronisation context or the thread pool).</summary>
public sealed class SynchronousProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
