using System.Collections.Concurrent;

namespace SharpDiffusion.Text;

/// <summary>
/// CLIP's byte-pair encoding of one pre-token (already written in <see cref="ByteLevelAlphabet"/> characters).
/// The word starts as single characters with <c>&lt;/w&gt;</c> glued to the last one (CLIP marks word ends, GPT-2
/// marks word starts); then, repeatedly, the adjacent pair with the lowest merge rank is merged everywhere it
/// occurs, left to right, until no adjacent pair has a rank.
/// </summary>
sealed class BytePairEncoder
{
    public const string EndOfWord = "</w>";

    readonly Dictionary<(string Left, string Right), int> _ranks;

    // Prompts repeat the same words over and over; the merge loop is the expensive part.
    readonly ConcurrentDictionary<string, string[]> _cache = new(StringComparer.Ordinal);

    /// <param name="merges">Merge rules in priority order (index = rank).</param>
    /// <param name="wholeTokens">Pre-tokens that are already vocabulary entries and must not be split or marked
    /// with <c>&lt;/w&gt;</c>: CLIP's <c>&lt;|startoftext|&gt;</c> / <c>&lt;|endoftext|&gt;</c>, which its
    /// pre-tokenizer can produce from text such as "&lt;|ENDOFTEXT|&gt;" that the special-token split did not catch.</param>
    public BytePairEncoder(IReadOnlyList<(string Left, string Right)> merges, IEnumerable<string> wholeTokens)
    {
        _ranks = new Dictionary<(string, string), int>(merges.Count);
        for (int rank = 0; rank < merges.Count; rank++)
            _ranks[merges[rank]] = rank; // a repeated rule keeps its last rank, as a Python dict built from the list would
        foreach (string token in wholeTokens)
            _cache[token] = [token];
    }

    public int MergeCount => _ranks.Count;

    /// <summary>The BPE symbols of one pre-token, e.g. "ðŁĺĬ" -> ["ðŁĺĬ&lt;/w&gt;"], "hello" -> ["hello&lt;/w&gt;"].</summary>
    public IReadOnlyList<string> Encode(string word) => _cache.GetOrAdd(word, Merge);

    string[] Merge(string word)
    {
        var symbols = new List<string>(word.Length);
        for (int i = 0; i < word.Length - 1; i++)
            symbols.Add(word[i].ToString());
        symbols.Add(word[^1] + EndOfWord);

        while (symbols.Count > 1)
        {
            var best = LowestRankedPair(symbols);
            if (best is null)
                break;
            symbols = MergeEverywhere(symbols, best.Value);
        }
        return [.. symbols];
    }

    (string Left, string Right)? LowestRankedPair(List<string> symbols)
    {
        (string, string)? best = null;
        int bestRank = int.MaxValue;
        for (int i = 0; i < symbols.Count - 1; i++)
        {
            var pair = (symbols[i], symbols[i + 1]);
            if (_ranks.TryGetValue(pair, out int rank) && rank < bestRank)
            {
                best = pair;
                bestRank = rank;
            }
        }
        return best;
    }

    /// <summary>Non-overlapping, left to right: with the rule "a a", "a a a" becomes "aa a".</summary>
    static List<string> MergeEverywhere(List<string> symbols, (string Left, string Right) pair)
    {
        var merged = new List<string>(symbols.Count);
        for (int i = 0; i < symbols.Count; i++)
        {
            if (i < symbols.Count - 1 && symbols[i] == pair.Left && symbols[i + 1] == pair.Right)
            {
                merged.Add(pair.Left + pair.Right);
                i++;
            }
            else
            {
                merged.Add(symbols[i]);
            }
        }
        return merged;
    }
}
