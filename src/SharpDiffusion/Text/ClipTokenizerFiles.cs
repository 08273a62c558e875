using System.Text.Json;

namespace SharpDiffusion.Text;

/// <summary>The special tokens and length limit of a tokenizer folder (the CLIPTokenizer defaults where unset).</summary>
sealed record ClipTokenizerSettings(
    int ModelMaxLength,
    string BosToken,
    string EosToken,
    string UnkToken,
    string PadToken)
{
    public static readonly ClipTokenizerSettings Defaults =
        new(77, "<|startoftext|>", "<|endoftext|>", "<|endoftext|>", "<|endoftext|>");
}

/// <summary>
/// Reads a Hugging Face CLIP tokenizer folder: <c>vocab.json</c> (token -> id), <c>merges.txt</c> (BPE rules in
/// priority order) and, optionally, <c>tokenizer_config.json</c> and <c>special_tokens_map.json</c>.
/// </summary>
static class ClipTokenizerFiles
{
    public const string VocabFile = "vocab.json";
    public const string MergesFile = "merges.txt";
    public const string ConfigFile = "tokenizer_config.json";
    public const string SpecialTokensMapFile = "special_tokens_map.json";

    // The slow CLIPTokenizer keeps only merges.txt lines [1, 48895): the version header is skipped and the list is
    // cut at 49152 - 256 - 2 = 48894 rules, the size of CLIP's vocabulary minus the byte alphabet and the two
    // special tokens. A longer file must give the same tokens as it does there.
    const int MaxMerges = 49152 - 256 - 2;

    public static string RequireFile(string directory, string name)
    {
        string path = Path.Combine(directory, name);
        if (!File.Exists(path))
            throw new FileNotFoundException(
                $"CLIP tokenizer file '{name}' not found: {path}. A tokenizer folder must contain {VocabFile} and " +
                $"{MergesFile} ({ConfigFile} and {SpecialTokensMapFile} are optional), e.g. the 'tokenizer' folder " +
                "of a diffusers Stable Diffusion model.", path);
        return path;
    }

    /// <summary>token -> id; refused unless every byte of the byte-level alphabet is an entry (otherwise text
    /// would silently become unknown tokens) and every id is >= 0.</summary>
    public static Dictionary<string, int> ReadVocab(string path)
    {
        using var stream = File.OpenRead(path);
        return ReadVocab(stream, path);
    }

    /// <summary><see cref="ReadVocab(string)"/> of a stream (an embedded resource); <paramref name="path"/> names it in errors.</summary>
    public static Dictionary<string, int> ReadVocab(Stream stream, string path)
    {
        Dictionary<string, int>? vocab;
        try
        {
            vocab = JsonSerializer.Deserialize<Dictionary<string, int>>(stream);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not a JSON object of token -> integer id ({OneLine(e.Message)})", e);
        }
        if (vocab is null)
            throw new InvalidDataException($"{path} is not a JSON object of token -> integer id");
        if (vocab.FirstOrDefault(p => p.Value < 0) is { Key: not null } negative)
            throw new InvalidDataException($"{path}: token '{Shown(negative.Key)}' has the negative id {negative.Value}");
        if (ByteLevelAlphabet.Characters.FirstOrDefault(c => !vocab.ContainsKey(c.ToString())) is var missing && missing != default)
            throw new InvalidDataException($"{path} has {vocab.Count} entries and lacks the byte-level symbol '{missing}'; " +
                "a CLIP vocabulary has all 256 (a truncated or wrong file?)");
        return vocab;
    }

    /// <summary>
    /// The merge rules; refused when there are none, or when a rule's parts or result are not vocabulary entries
    /// (CLIP's vocabulary is the byte alphabet plus the result of every merge, so such a rule means the two files
    /// do not belong together and tokens would silently be wrong).
    /// </summary>
    public static List<(string Left, string Right)> ReadMerges(string path, IReadOnlyDictionary<string, int> vocab) =>
        ReadMergesText(File.ReadAllText(path), path, vocab);

    /// <summary><see cref="ReadMerges"/> of the file's text; <paramref name="path"/> names it in errors.</summary>
    public static List<(string Left, string Right)> ReadMergesText(string fileText, string path, IReadOnlyDictionary<string, int> vocab)
    {
        // Python's text mode turns CRLF (as in some published copies) and CR into LF; the file is then stripped and split.
        string text = fileText.Replace("\r\n", "\n").Replace('\r', '\n');
        string[] lines = text.Trim().Split('\n');
        var merges = new List<(string, string)>(Math.Min(lines.Length, MaxMerges));
        int lineNumber = 1;
        foreach (string line in lines.Skip(1).Take(MaxMerges))
        {
            lineNumber++;
            // A line that is not two symbols can never match a pair of adjacent symbols; dropping it keeps the
            // relative order (and so the outcome) of the others.
            string[] parts = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length != 2)
                continue;
            foreach (string symbol in (string[])[parts[0], parts[1], parts[0] + parts[1]])
                if (!vocab.ContainsKey(symbol))
                    throw new InvalidDataException($"{path} line {lineNumber}: the merge '{Shown(line)}' uses or makes '{Shown(symbol)}', " +
                        "which vocab.json does not have; the two files do not belong together");
            merges.Add((parts[0], parts[1]));
        }
        if (merges.Count == 0)
            throw new InvalidDataException($"{path} has no merge rules (a header line, then one 'left right' pair per line, is expected)");
        return merges;
    }

    static string Shown(string s) => s.Length > 40 ? OneLine(s[..37]) + "..." : OneLine(s);

    static string OneLine(string s) => string.Concat(s.Select(c => char.IsControl(c) ? ' ' : c));

    /// <summary>
    /// tokenizer_config.json first, then special_tokens_map.json on top (transformers' <c>from_pretrained</c> lets
    /// the map override the config). A token may be a plain string or an AddedToken object with "content".
    /// </summary>
    public static ClipTokenizerSettings ReadSettings(string directory)
    {
        var settings = ClipTokenizerSettings.Defaults;
        foreach (string name in new[] { ConfigFile, SpecialTokensMapFile })
        {
            string path = Path.Combine(directory, name);
            if (!File.Exists(path))
                continue;
            JsonDocument document;
            try { document = JsonDocument.Parse(File.ReadAllText(path)); }
            catch (JsonException e) { throw new InvalidDataException($"{path} is not valid JSON ({OneLine(e.Message)})", e); }
            using var _ = document;
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{path} is not a JSON object");
            settings = settings with
            {
                ModelMaxLength = ReadMaxLength(root, path) ?? settings.ModelMaxLength,
                BosToken = ReadToken(root, "bos_token", path) ?? settings.BosToken,
                EosToken = ReadToken(root, "eos_token", path) ?? settings.EosToken,
                UnkToken = ReadToken(root, "unk_token", path) ?? settings.UnkToken,
                PadToken = ReadToken(root, "pad_token", path) ?? settings.PadToken,
            };
        }
        return settings;
    }

    static int? ReadMaxLength(JsonElement root, string path)
    {
        if (!root.TryGetProperty("model_max_length", out var value) || value.ValueKind == JsonValueKind.Null)
            return null;
        // transformers writes 1e30 here when a tokenizer has no limit; a CLIP text encoder always has one.
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt32(out int length) || length < 2)
            throw new InvalidDataException(
                $"{path}: model_max_length must be an integer >= 2 (the text encoder's positions, 77 for CLIP), got {value}");
        return length;
    }

    /// <summary>A missing or null entry leaves the previous value (the CLIPTokenizer default).</summary>
    static string? ReadToken(JsonElement root, string key, string path)
    {
        if (!root.TryGetProperty(key, out var value))
            return null;
        return value.ValueKind switch
        {
            JsonValueKind.Null => null,
            JsonValueKind.String => value.GetString(),
            JsonValueKind.Object when value.TryGetProperty("content", out var content)
                && content.ValueKind == JsonValueKind.String => content.GetString(),
            _ => throw new InvalidDataException(
                $"{path}: {key} must be a string or an object with a \"content\" string, got {value}"),
        };
    }
}
