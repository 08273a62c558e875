using SharpDiffusion.Loading;
using SharpDiffusion.Pipelines;

namespace SharpDiffusion.Conditioning;

/// <summary>
/// A family's prompts → <see cref="TextConditioning"/>: its tokenizers and text encoders (SD 1.x/2.x: one CLIP; SDXL:
/// CLIP-L and bigG; SD3: those and T5), what it accepts (<see cref="Validate"/>) and the embeddings it can learn
/// (textual inversion).
/// </summary>
public interface ITextConditioner
{
    /// <summary>The text encoders' weights, in the order LoRA files name them (te1, te2, ...).</summary>
    IReadOnlyList<ComponentWeights> Encoders { get; }

    /// <summary>Whether <see cref="Encode"/> brings each encoder into memory itself, one at a time (SD3: CLIP-L, bigG,
    /// then the 9.5 GB T5), so a low-memory call never holds them together; otherwise the pipeline brings them all in.</summary>
    bool ReadsEncodersOneAtATime => false;

    /// <summary>Refuses, in one line, what the options ask of these encoders that they cannot do (clip skip beyond the
    /// layers, another family's prompt fields).</summary>
    void Validate(GenerationOptions options);

    /// <summary>The conditioning of a batch: [uncond; cond] rows when guided, each prompt repeated per image.</summary>
    TextConditioning Encode(PromptBatch batch, ICollection<string> warnings);

    /// <summary>diffusers' load_textual_inversion for these encoders; returns the tokens added.</summary>
    IReadOnlyList<string> LoadTextualInversion(string path, string? token = null);
}

/// <summary>What one call encodes: its options, the prompts and negative prompts of every image (each prompt repeated
/// per image; LoRA tags already cut out of the prompts), whether guidance needs the negative rows, and the size the
/// call works at (SDXL conditions on it).</summary>
public sealed record PromptBatch(GenerationOptions Options, IReadOnlyList<string> Prompts, IReadOnlyList<string> Negatives,
    bool Guided, int Width, int Height)
{
    /// <summary>One value per image: <paramref name="pick"/> of each prompt index, repeated per image.</summary>
    public List<string> Each(Func<int, string> pick) =>
        Enumerable.Range(0, Options.PromptCount).SelectMany(i => Enumerable.Repeat(pick(i), Options.NumImagesPerPrompt)).ToList();
}
