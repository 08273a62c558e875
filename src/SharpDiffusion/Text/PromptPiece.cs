namespace SharpDiffusion.Text;

/// <summary>
/// One run of prompt text and its attention weight, as AUTOMATIC1111's <c>parse_prompt_attention</c> returns it:
/// "a (cat:1.3)" -> ("a ", 1.0), ("cat", 1.3). A BREAK keyword is the piece ("BREAK", -1), multiplied by the
/// brackets around it like any other piece.
/// </summary>
public readonly record struct PromptPiece(string Text, double Weight)
{
    /// <summary>
    /// A1111's test for closing a chunk (<c>text == 'BREAK' and weight == -1</c>): only a BREAK whose weight no
    /// bracket changed, so the -1.3 of "(a BREAK b:1.3)" is not a break.
    /// </summary>
    public bool IsBreak => Text == PromptAttention.Break && Weight == -1;
}
