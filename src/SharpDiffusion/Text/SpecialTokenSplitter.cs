namespace SharpDiffusion.Text;

/// <summary>
/// Cuts raw text at occurrences of the special tokens before any cleanup, as transformers' slow tokenizers do with
/// their added tokens (<c>tokens_trie.split</c>): a special token is kept whole and mapped straight to its id, the
/// text between is cleaned and byte-pair-encoded on its own. So "a cat&lt;|endoftext|&gt;dog" gives the end token
/// in the middle, and with SD2's pad token "!" every "!" becomes its own token: "wow!!!" -> "wow", "!", "!", "!".
/// Matching is exact (case-sensitive); at each position the longest token wins, the leftmost match first.
/// </summary>
sealed class SpecialTokenSplitter
{
    readonly string[] _tokensLongestFirst;

    public SpecialTokenSplitter(IEnumerable<string> specialTokens)
    {
        _tokensLongestFirst = specialTokens.Where(t => t.Length > 0).Distinct(StringComparer.Ordinal)
            .OrderByDescending(t => t.Length).ToArray();
    }

    /// <summary>The pieces of <paramref name="text"/> in order; empty text between two tokens is left out.</summary>
    public IEnumerable<(string Text, bool IsSpecial)> Split(string text)
    {
        int chunkStart = 0;
        int i = 0;
        while (i < text.Length)
        {
            string? token = TokenAt(text, i);
            if (token is null)
            {
                i++;
                continue;
            }
            if (i > chunkStart)
                yield return (text[chunkStart..i], false);
            yield return (token, true);
            i += token.Length;
            chunkStart = i;
        }
        if (chunkStart < text.Length)
            yield return (text[chunkStart..], false);
    }

    string? TokenAt(string text, int i)
    {
        foreach (string token in _tokensLongestFirst)
            if (text.AsSpan(i).StartsWith(token, StringComparison.Ordinal))
                return token;
        return null;
    }
}
