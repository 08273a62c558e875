using SharpDiffusion.Configuration;
using static TorchSharp.torch;

namespace SharpDiffusion.Text;

/// <summary>
/// transformers' slow <c>T5Tokenizer</c> (<c>legacy=True</c>, as SD3's <c>tokenizer_3</c> and Flux's <c>tokenizer_2</c>),
/// token for token:
/// <list type="number">
/// <item>the special tokens <c>&lt;pad&gt;</c>, <c>&lt;/s&gt;</c>, <c>&lt;unk&gt;</c> and the 100 <c>&lt;extra_id_N&gt;</c> are cut
/// out of the raw text and kept whole (an extra id also eats the spaces beside it: lstrip/rstrip);</item>
/// <item>each remaining piece is encoded by <see cref="SentencePieceProcessor"/> (nmt_nfkc normalisation, "▁" prefix,
/// unigram segmentation);</item>
/// <item>pieces become ids; <c>&lt;extra_id_N&gt;</c> is id <c>pieces + extra_ids − 1 − N</c>; <c>&lt;/s&gt;</c> is appended
/// unless the ids already end with it.</item>
/// </list>
/// <see cref="Encode"/> is what the pipelines feed the T5 encoder:
/// <c>tokenizer(text, padding="max_length", max_length=max_sequence_length, truncation=True).input_ids</c>.
/// Thread-safe.
/// </summary>
public sealed class T5Tokenizer
{
    public const string SpieceFile = "spiece.model";
    public const string ConfigFile = "tokenizer_config.json";

    readonly SentencePieceProcessor _sp;
    readonly Dictionary<string, int> _specialIds = new(StringComparer.Ordinal);
    readonly SpecialTokenSplitter _splitter;

    public T5Tokenizer(SentencePieceProcessor sentencePiece, int extraIds = 100, int modelMaxLength = 512,
        string eosToken = "</s>", string unkToken = "<unk>", string padToken = "<pad>")
    {
        if (extraIds < 0) throw new ArgumentOutOfRangeException(nameof(extraIds), extraIds, "extra_ids must be 0 or more.");
        _sp = sentencePiece;
        ExtraIds = extraIds;
        ModelMaxLength = modelMaxLength;
        (EosToken, UnkToken, PadToken) = (eosToken, unkToken, padToken);
        foreach (string token in new[] { padToken, eosToken, unkToken })
            _specialIds[token] = _sp.PieceToId(token);
        for (int i = 0; i < extraIds; i++)
            _specialIds[ExtraIdToken(i)] = _sp.PieceCount + extraIds - 1 - i;
        _splitter = new SpecialTokenSplitter(_specialIds.Keys);
    }

    /// <summary>
    /// Loads a tokenizer folder (<c>tokenizer_3</c> of SD3, <c>tokenizer_2</c> of Flux): <c>spiece.model</c> is required;
    /// <c>tokenizer_config.json</c> supplies extra_ids, model_max_length and the eos/unk/pad tokens when present.
    /// </summary>
    public static T5Tokenizer FromDirectory(string tokenizerDir)
    {
        var sp = SentencePieceProcessor.Load(Path.Combine(tokenizerDir, SpieceFile));
        string configPath = Path.Combine(tokenizerDir, ConfigFile);
        if (!File.Exists(configPath))
            return new T5Tokenizer(sp);
        var c = JsonConfig.Load(configPath);
        if (!c.GetBool("legacy", true))
            throw new NotSupportedException($"Config {configPath}: 'legacy' is false; only the legacy T5Tokenizer (as SD3 and Flux ship it) is supported: set it to true.");
        var root = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(configPath)) as System.Text.Json.Nodes.JsonObject;
        return new T5Tokenizer(sp,
            extraIds: c.GetInt("extra_ids", 100, 0, 1 << 20),
            // transformers writes a huge sentinel (1e30) when there is no limit.
            modelMaxLength: c.GetDouble("model_max_length", 512) is var m && m >= 1 && m < int.MaxValue ? (int)m : 512,
            eosToken: TokenText(root, "eos_token", "</s>"),
            unkToken: TokenText(root, "unk_token", "<unk>"),
            padToken: TokenText(root, "pad_token", "<pad>"));
    }

    // A special token is a string or an AddedToken dict {"content": ...}.
    static string TokenText(System.Text.Json.Nodes.JsonObject? root, string key, string fallback) => root?[key] switch
    {
        System.Text.Json.Nodes.JsonValue v when v.TryGetValue(out string? s) && s.Length > 0 => s,
        System.Text.Json.Nodes.JsonObject o when o["content"] is System.Text.Json.Nodes.JsonValue v && v.TryGetValue(out string? s) && s.Length > 0 => s,
        _ => fallback,
    };

    public static string ExtraIdToken(int n) => $"<extra_id_{n}>";

    public int ExtraIds { get; }
    public int ModelMaxLength { get; }
    public string EosToken { get; }
    public string UnkToken { get; }
    public string PadToken { get; }
    public int EosTokenId => _specialIds[EosToken];
    public int UnkTokenId => _specialIds[UnkToken];
    public int PadTokenId => _specialIds[PadToken];
    /// <summary>SentencePiece pieces plus the extra ids (transformers' <c>vocab_size</c>); the encoder's may be larger.</summary>
    public int VocabSize => _sp.PieceCount + ExtraIds;

    /// <summary>transformers' <c>tokenizer.tokenize(text)</c>: "a cat" → ["▁a", "▁c", "at"].</summary>
    public IReadOnlyList<string> Tokenize(string text) => TokenizeWithIds(text).Select(t => t.Token).ToArray();

    /// <summary>The ids of <see cref="Tokenize"/> plus the end token: <c>tokenizer(text).input_ids</c>, any length.</summary>
    public int[] EncodeUntruncated(string text) => WithEos(TokenizeWithIds(text).Select(t => t.Id).ToArray());

    /// <summary>
    /// Exactly <paramref name="maxLength"/> ids: the first <c>maxLength − 1</c> token ids, the end token (unless they end
    /// with it already), then <see cref="PadTokenId"/> to the full length.
    /// </summary>
    public int[] Encode(string text, int maxLength)
    {
        if (maxLength < 1) throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, "max_sequence_length must be at least 1.");
        int[] tokens = TokenizeWithIds(text).Select(t => t.Id).ToArray();
        int[] ids = WithEos(tokens.Length + 1 > maxLength ? tokens[..(maxLength - 1)] : tokens);
        var padded = new int[maxLength];
        Array.Fill(padded, PadTokenId);
        ids.CopyTo(padded, 0);
        return padded;
    }

    /// <summary><see cref="Encode"/> of each text as one int64 tensor [B, maxLength] on the CPU.</summary>
    public Tensor EncodeBatch(IReadOnlyList<string> texts, int maxLength)
    {
        var ids = new long[texts.Count * (long)maxLength];
        for (int b = 0; b < texts.Count; b++)
        {
            int[] row = Encode(texts[b], maxLength);
            for (int j = 0; j < maxLength; j++) ids[b * (long)maxLength + j] = row[j];
        }
        return tensor(ids, [texts.Count, maxLength], dtype: ScalarType.Int64); // [B, T]
    }

    // T5Tokenizer._add_eos_if_not_present: a text ending in "</s>" gets no second one.
    int[] WithEos(int[] ids) => ids.Length > 0 && ids[^1] == EosTokenId ? ids : [.. ids, EosTokenId];

    List<(string Token, int Id)> TokenizeWithIds(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var chunks = _splitter.Split(text).ToList();
        // transformers' tokenize(): an AddedToken with lstrip/rstrip (the extra ids) strips the text beside it.
        for (int i = 0; i < chunks.Count; i++)
        {
            if (!chunks[i].IsSpecial || !chunks[i].Text.StartsWith("<extra_id_", StringComparison.Ordinal)) continue;
            if (i > 0 && !chunks[i - 1].IsSpecial) chunks[i - 1] = (chunks[i - 1].Text.TrimEnd(PythonWhitespace), false);
            if (i + 1 < chunks.Count && !chunks[i + 1].IsSpecial) chunks[i + 1] = (chunks[i + 1].Text.TrimStart(PythonWhitespace), false);
        }
        var tokens = new List<(string, int)>();
        foreach (var (chunk, isSpecial) in chunks)
        {
            if (isSpecial) tokens.Add((chunk, _specialIds[chunk]));
            else if (chunk.Length > 0)
                foreach (var (piece, id) in _sp.Encode(chunk))
                    tokens.Add((piece, _specialIds.TryGetValue(piece, out int special) ? special : _sp.PieceToId(piece)));
        }
        return tokens;
    }

    // Python's str.strip() set: Unicode whitespace plus the separators U+001C–U+001F.
    static readonly char[] PythonWhitespace = Enumerable.Range(0, 0x3001).Select(c => (char)c)
        .Where(c => char.IsWhiteSpace(c) || c is >= '\u001C' and <= '\u001F').ToArray();
}
