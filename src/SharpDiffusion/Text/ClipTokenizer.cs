using TorchSharp;
using static TorchSharp.torch;

namespace SharpDiffusion.Text;

/// <summary>
/// CLIP's byte-level BPE tokenizer, token for token the same as transformers' slow <c>CLIPTokenizer</c> without
/// ftfy (what diffusers' Stable Diffusion pipelines use when ftfy is not installed):
/// <list type="number">
/// <item>special tokens (<c>&lt;|startoftext|&gt;</c>, <c>&lt;|endoftext|&gt;</c>, and the pad token, e.g. SD2's
/// "!") are cut out of the raw text (<see cref="SpecialTokenSplitter"/>);</item>
/// <item>each remaining piece is cleaned and lower-cased (<see cref="ClipTextCleanup"/>),</item>
/// <item>split by CLIP's regex (<see cref="ClipPreTokenizer"/>),</item>
/// <item>written as UTF-8 bytes (<see cref="ByteLevelAlphabet"/>) and byte-pair-encoded (<see cref="BytePairEncoder"/>).</item>
/// </list>
/// <see cref="Encode"/> then gives what the pipeline feeds the text encoder:
/// <c>tokenizer(text, padding="max_length", max_length=77, truncation=True).input_ids</c>.
/// Encoding is thread-safe; <see cref="AddTokens"/> (textual inversion) is not, while another thread encodes.
/// </summary>
public sealed class ClipTokenizer
{
    const string StartOfText = "<|startoftext|>";
    const string EndOfText = "<|endoftext|>";

    readonly Dictionary<string, int> _tokenToId;
    readonly string[] _special;
    readonly List<string> _added = [];
    SpecialTokenSplitter _specialTokens;
    readonly BytePairEncoder _bpe;

    /// <summary>Length of every <see cref="Encode"/> result: the text encoder's positions (77 for CLIP).</summary>
    public int ModelMaxLength { get; }
    public string BosToken { get; }
    public string EosToken { get; }
    public string UnkToken { get; }
    public string PadToken { get; }
    public int BosTokenId { get; }
    public int EosTokenId { get; }
    public int UnkTokenId { get; }
    /// <summary>49407 (= EOS) for SD1's tokenizer, 0 ("!") for SD2's.</summary>
    public int PadTokenId { get; }
    /// <summary>vocab.json entries plus special tokens that were not in it.</summary>
    public int VocabSize => _tokenToId.Count;
    /// <summary>Number of BPE merge rules in use.</summary>
    public int MergeCount => _bpe.MergeCount;

    ClipTokenizer(Dictionary<string, int> vocab, List<(string, string)> merges, ClipTokenizerSettings settings)
    {
        _tokenToId = vocab;
        ModelMaxLength = settings.ModelMaxLength;
        (BosToken, EosToken, UnkToken, PadToken) = (settings.BosToken, settings.EosToken, settings.UnkToken, settings.PadToken);

        // transformers registers bos, eos, unk and pad as special (added) tokens: one already in the vocabulary keeps
        // its id (SD2's "!" -> 0), a new one is appended after the last id.
        string[] special = [BosToken, EosToken, UnkToken, PadToken];
        foreach (string token in special)
            _tokenToId.TryAdd(token, _tokenToId.Count);
        BosTokenId = _tokenToId[BosToken];
        EosTokenId = _tokenToId[EosToken];
        UnkTokenId = _tokenToId[UnkToken];
        PadTokenId = _tokenToId[PadToken];

        _special = special;
        _specialTokens = new SpecialTokenSplitter(special);
        _bpe = new BytePairEncoder(merges, [StartOfText, EndOfText]);
    }

    /// <summary>
    /// Loads a tokenizer folder (the <c>tokenizer/</c> of a diffusers model): <c>vocab.json</c> and
    /// <c>merges.txt</c> are required; <c>tokenizer_config.json</c> and <c>special_tokens_map.json</c> supply
    /// model_max_length and the bos/eos/unk/pad tokens when present.
    /// </summary>
    /// <exception cref="FileNotFoundException">vocab.json or merges.txt is missing.</exception>
    public static ClipTokenizer FromDirectory(string tokenizerDir)
    {
        string vocabPath = ClipTokenizerFiles.RequireFile(tokenizerDir, ClipTokenizerFiles.VocabFile);
        string mergesPath = ClipTokenizerFiles.RequireFile(tokenizerDir, ClipTokenizerFiles.MergesFile);
        var vocab = ClipTokenizerFiles.ReadVocab(vocabPath);
        return new ClipTokenizer(
            vocab,
            ClipTokenizerFiles.ReadMerges(mergesPath, vocab),
            ClipTokenizerFiles.ReadSettings(tokenizerDir));
    }

    /// <summary>Which special tokens a bundled tokenizer uses: SD 1.x (CLIP ViT-L/14) pads with
    /// <c>&lt;|endoftext|&gt;</c>, SD 2.x (OpenCLIP ViT-H) with <c>"!"</c> (id 0).</summary>
    public enum BundledVariant { Sd1, Sd2 }

    /// <summary>
    /// The CLIP tokenizer shipped inside the library (OpenAI CLIP's BPE files, <c>Resources/clip-tokenizer/</c>), for
    /// models that carry none, such as single-file checkpoints. The same tokens as the <c>tokenizer/</c> folder of an
    /// SD 1.x (or, with <see cref="BundledVariant.Sd2"/>, SD 2.x) diffusers model.
    /// </summary>
    public static ClipTokenizer Bundled(BundledVariant variant = BundledVariant.Sd1)
    {
        var vocab = ClipTokenizerFiles.ReadVocab(BundledFile(ClipTokenizerFiles.VocabFile), "bundled " + ClipTokenizerFiles.VocabFile);
        using var mergesReader = new StreamReader(BundledFile(ClipTokenizerFiles.MergesFile));
        var merges = ClipTokenizerFiles.ReadMergesText(mergesReader.ReadToEnd(), "bundled " + ClipTokenizerFiles.MergesFile, vocab);
        var settings = variant == BundledVariant.Sd2 ? ClipTokenizerSettings.Defaults with { PadToken = "!" } : ClipTokenizerSettings.Defaults;
        return new ClipTokenizer(vocab, merges, settings);
    }

    /// <summary>A bundled tokenizer file (vocab.json, merges.txt) as a stream, e.g. to write it into a converted folder.</summary>
    public static Stream BundledFile(string name) =>
        typeof(ClipTokenizer).Assembly.GetManifestResourceStream("SharpDiffusion.clip-tokenizer." + name)
        ?? throw new FileNotFoundException($"The bundled CLIP tokenizer file {name} is missing from the SharpDiffusion assembly (a broken build?).");

    /// <summary>
    /// The BPE tokens of <paramref name="text"/>, without start/end tokens and without truncation
    /// (transformers' <c>tokenizer.tokenize(text)</c>): "a photo" -> ["a&lt;/w&gt;", "photo&lt;/w&gt;"].
    /// </summary>
    public IReadOnlyList<string> Tokenize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var tokens = new List<string>();
        foreach (var (piece, isSpecial) in _specialTokens.Split(text))
        {
            if (isSpecial)
            {
                tokens.Add(piece);
                continue;
            }
            foreach (string word in ClipPreTokenizer.Split(ClipTextCleanup.Clean(piece)))
                tokens.AddRange(_bpe.Encode(ByteLevelAlphabet.Encode(word)));
        }
        return tokens;
    }

    /// <summary>Tokens added after loading (textual-inversion triggers), in the order they were added.</summary>
    public IReadOnlyList<string> AddedTokens => _added;

    /// <summary>
    /// transformers' <c>add_tokens</c>: each new token gets the next id (the current <see cref="VocabSize"/>) and is from
    /// then on matched whole in raw text, before cleanup and BPE, like the special tokens (no "&lt;/w&gt;"). A token that
    /// is already known is refused. Not safe while another thread encodes with this tokenizer.
    /// </summary>
    public int[] AddTokens(IReadOnlyList<string> tokens)
    {
        foreach (string token in tokens)
            if (string.IsNullOrEmpty(token) || _tokenToId.ContainsKey(token) || tokens.Count(t => t == token) > 1)
                throw new ArgumentException($"The token '{token}' is already in the tokenizer (or empty); choose another trigger word.");
        var ids = new int[tokens.Count];
        for (int i = 0; i < tokens.Count; i++)
        {
            ids[i] = _tokenToId.Count;
            _tokenToId[tokens[i]] = ids[i];
            _added.Add(tokens[i]);
        }
        _specialTokens = new SpecialTokenSplitter([.. _special, .. _added]);
        return ids;
    }

    /// <summary>How many vectors the added token with this id brings in: 1 + its companions <c>tok_1</c>, <c>tok_2</c>, …
    /// (the tokens <see cref="ExpandMultiVectorTokens"/> writes after it); 1 for every other id.</summary>
    public int VectorCount(int id)
    {
        int first = _tokenToId.Count - _added.Count;                             // added tokens have the last ids, in order
        if (id < first || id >= _tokenToId.Count)
            return 1;
        string token = _added[id - first];
        int count = 1;
        while (_tokenToId.ContainsKey($"{token}_{count}"))
            count++;
        return count;
    }

    /// <summary>
    /// diffusers' <c>maybe_convert_prompt</c>: every added token of the prompt that has multi-vector companions
    /// (<c>&lt;tok&gt;_1</c>, <c>&lt;tok&gt;_2</c>, …) is replaced (as a plain string replace, as diffusers does) by
    /// "&lt;tok&gt; &lt;tok&gt;_1 …", so one trigger word brings in all its vectors.
    /// </summary>
    public string ExpandMultiVectorTokens(string prompt)
    {
        if (_added.Count == 0)
            return prompt;
        foreach (string token in Tokenize(prompt).Distinct().Where(_added.Contains))
        {
            string replacement = token;
            for (int i = 1; _tokenToId.ContainsKey($"{token}_{i}"); i++)
                replacement += $" {token}_{i}";
            prompt = prompt.Replace(token, replacement, StringComparison.Ordinal);
        }
        return prompt;
    }

    /// <summary>The id of a vocabulary entry such as ",&lt;/w&gt;" (transformers' <c>get_vocab().get(token)</c>).</summary>
    public bool TryGetTokenId(string token, out int id) => _tokenToId.TryGetValue(token, out id);

    /// <summary>Vocabulary ids of tokens; a token the vocabulary lacks maps to the unk id.</summary>
    public int[] ConvertTokensToIds(IEnumerable<string> tokens) =>
        tokens.Select(t => _tokenToId.GetValueOrDefault(t, UnkTokenId)).ToArray();

    /// <summary>
    /// BOS, every token id, EOS: no truncation and no padding, so it may be longer than
    /// <see cref="ModelMaxLength"/> (transformers' <c>tokenizer(text).input_ids</c>). Use it to tell whether and
    /// what <see cref="Encode"/> cut off.
    /// </summary>
    public int[] EncodeUntruncated(string text) => [BosTokenId, .. ConvertTokensToIds(Tokenize(text)), EosTokenId];

    /// <summary>
    /// Exactly <see cref="ModelMaxLength"/> ids: BOS, the first <c>ModelMaxLength - 2</c> token ids, EOS, then
    /// <see cref="PadTokenId"/> up to the full length (<c>padding="max_length", truncation=True</c>).
    /// </summary>
    public int[] Encode(string text)
    {
        int[] tokenIds = ConvertTokensToIds(Tokenize(text));
        int kept = Math.Min(tokenIds.Length, ModelMaxLength - 2);

        var ids = new int[ModelMaxLength];
        Array.Fill(ids, PadTokenId);
        ids[0] = BosTokenId;
        Array.Copy(tokenIds, 0, ids, 1, kept);
        ids[kept + 1] = EosTokenId;
        return ids;
    }

    /// <summary><see cref="Encode"/> of each text as one int64 tensor [B, ModelMaxLength], on the CPU.</summary>
    public Tensor EncodeBatch(IReadOnlyList<string> texts)
    {
        var ids = new long[texts.Count * ModelMaxLength];
        for (int b = 0; b < texts.Count; b++)
        {
            int[] row = Encode(texts[b]);
            for (int j = 0; j < row.Length; j++)
                ids[b * ModelMaxLength + j] = row[j];
        }
        return torch.tensor(ids, [texts.Count, ModelMaxLength], dtype: int64); // [B, 77]
    }
}
