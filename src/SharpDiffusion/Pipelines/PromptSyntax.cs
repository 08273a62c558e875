namespace SharpDiffusion.Pipelines;

/// <summary>How prompt text is read.</summary>
public enum PromptSyntax
{
    /// <summary>diffusers: the text as written, truncated to the tokenizer's 77 tokens (with a warning).</summary>
    Plain,
    /// <summary>AUTOMATIC1111: (emphasis), [de-emphasis], (word:1.3), escapes, BREAK; any length, in 75-token
    /// chunks each encoded on its own and concatenated.</summary>
    A1111,
}
