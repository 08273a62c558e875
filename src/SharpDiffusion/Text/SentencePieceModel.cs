namespace SharpDiffusion.Text;

/// <summary>sentencepiece's <c>ModelProto.SentencePiece.Type</c>.</summary>
public enum SentencePieceType { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 }

/// <summary>One vocabulary entry; its id is its index in <see cref="SentencePieceModel.Pieces"/>.</summary>
public sealed record SentencePiece(string Piece, float Score, SentencePieceType Type);

/// <summary>
/// The contents of a <c>spiece.model</c> file (sentencepiece's <c>ModelProto</c>, protobuf): the pieces with their
/// scores and types, the trainer fields that change encoding, and the normalizer spec with its precompiled
/// character map. Field numbers and defaults are those of sentencepiece_model.proto (proto2).
/// </summary>
public sealed class SentencePieceModel
{
    /// <summary>TrainerSpec.ModelType: 1 unigram (T5's), 2 BPE, 3 word, 4 char.</summary>
    public int ModelType { get; private init; } = 1;
    public IReadOnlyList<SentencePiece> Pieces { get; private init; } = [];
    public bool ByteFallback { get; private init; }
    public bool TreatWhitespaceAsSuffix { get; private init; }
    public int UnkId { get; private init; }

    /// <summary>NormalizerSpec.name, e.g. "nmt_nfkc" (informative: the rules are in <see cref="PrecompiledCharsMap"/>).</summary>
    public string NormalizerName { get; private init; } = "";
    /// <summary>&lt;uint32 trie size&gt;&lt;Darts double-array trie&gt;&lt;NUL-separated replacement strings&gt;; empty: no rules.</summary>
    public byte[] PrecompiledCharsMap { get; private init; } = [];
    public bool AddDummyPrefix { get; private init; } = true;
    public bool RemoveExtraWhitespaces { get; private init; } = true;
    public bool EscapeWhitespaces { get; private init; } = true;

    /// <summary>The file it was read from, for messages.</summary>
    public string Source { get; private init; } = "";

    /// <summary>Reads and checks <paramref name="path"/>; a malformed file gives one line naming it.</summary>
    public static SentencePieceModel Load(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"SentencePiece model not found: {path}; a T5 tokenizer folder must contain spiece.model.", path);
        var length = new FileInfo(path).Length;
        if (length > 1L << 30)
            throw new InvalidDataException($"{path} is {length} bytes, too large for a SentencePiece model (under 1 GiB expected); is it the right file?");
        return Parse(File.ReadAllBytes(path), path);
    }

    public static SentencePieceModel Parse(ReadOnlySpan<byte> data, string source)
    {
        var reader = new ProtobufReader(data, source);
        var pieces = new List<SentencePiece>();
        var trainer = new TrainerFields();
        var normalizer = new NormalizerFields();
        while (!reader.AtEnd)
        {
            var (field, wire) = reader.ReadKey();
            if (field == 1 && wire == 2) pieces.Add(ReadPiece(new ProtobufReader(reader.ReadBytes(), source)));
            else if (field == 2 && wire == 2) trainer = ReadTrainer(new ProtobufReader(reader.ReadBytes(), source));
            else if (field == 3 && wire == 2) normalizer = ReadNormalizer(new ProtobufReader(reader.ReadBytes(), source));
            else reader.Skip(wire);
        }

        var model = new SentencePieceModel
        {
            Source = source,
            Pieces = pieces,
            ModelType = trainer.ModelType,
            ByteFallback = trainer.ByteFallback,
            TreatWhitespaceAsSuffix = trainer.TreatWhitespaceAsSuffix,
            NormalizerName = normalizer.Name,
            PrecompiledCharsMap = normalizer.CharsMap,
            AddDummyPrefix = normalizer.AddDummyPrefix,
            RemoveExtraWhitespaces = normalizer.RemoveExtraWhitespaces,
            EscapeWhitespaces = normalizer.EscapeWhitespaces,
            UnkId = FindUnknown(pieces, reader),
        };
        model.Check(reader);
        return model;
    }

    // sentencepiece's ModelInterface::InitializePieces: exactly one unknown piece, no empty or repeated piece.
    static int FindUnknown(List<SentencePiece> pieces, ProtobufReader reader)
    {
        if (pieces.Count == 0) throw reader.Broken("it has no pieces");
        int unk = -1;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < pieces.Count; i++)
        {
            if (pieces[i].Piece.Length == 0) throw reader.Broken($"piece {i} is empty");
            if (!seen.Add(pieces[i].Piece)) throw reader.Broken($"piece '{pieces[i].Piece}' is defined twice");
            if (pieces[i].Type == SentencePieceType.Unknown)
            {
                if (unk >= 0) throw reader.Broken($"pieces {unk} and {i} are both the unknown piece");
                unk = i;
            }
        }
        return unk >= 0 ? unk : throw reader.Broken("no piece has the type UNKNOWN");
    }

    void Check(ProtobufReader reader)
    {
        if (ModelType != 1)
            throw new NotSupportedException($"{Source}: SentencePiece model_type {ModelType} is not supported; only unigram (1, T5's) is.");
        if (PrecompiledCharsMap.Length > 0)
            _ = new PrecompiledCharsMap(PrecompiledCharsMap, Source); // checks the blob's layout now, not at the first prompt
        if (!ByteFallback && Pieces.Any(p => p.Type == SentencePieceType.Byte))
            throw reader.Broken("it has byte pieces but byte_fallback is off");
    }

    static SentencePiece ReadPiece(ProtobufReader r)
    {
        string piece = "";
        float score = 0;
        int type = 1;
        while (!r.AtEnd)
        {
            var (field, wire) = r.ReadKey();
            if (field == 1 && wire == 2) piece = r.ReadString();
            else if (field == 2 && wire == 5) score = r.ReadFloat();
            else if (field == 3 && wire == 0) type = r.ReadInt32();
            else r.Skip(wire);
        }
        if (type is < 1 or > 6) throw r.Broken($"piece '{piece}' has the unknown type {type}");
        if (!float.IsFinite(score)) throw r.Broken($"piece '{piece}' has the score {score}");
        return new SentencePiece(piece, score, (SentencePieceType)type);
    }

    sealed record TrainerFields(int ModelType = 1, bool ByteFallback = false, bool TreatWhitespaceAsSuffix = false);

    static TrainerFields ReadTrainer(ProtobufReader r)
    {
        var t = new TrainerFields();
        while (!r.AtEnd)
        {
            var (field, wire) = r.ReadKey();
            if (field == 3 && wire == 0) t = t with { ModelType = r.ReadInt32() };
            else if (field == 35 && wire == 0) t = t with { ByteFallback = r.ReadBool() };
            else if (field == 24 && wire == 0) t = t with { TreatWhitespaceAsSuffix = r.ReadBool() };
            else r.Skip(wire);
        }
        return t;
    }

    sealed record NormalizerFields(string Name = "", byte[]? Map = null, bool AddDummyPrefix = true,
        bool RemoveExtraWhitespaces = true, bool EscapeWhitespaces = true)
    {
        public byte[] CharsMap => Map ?? [];
    }

    static NormalizerFields ReadNormalizer(ProtobufReader r)
    {
        var n = new NormalizerFields();
        while (!r.AtEnd)
        {
            var (field, wire) = r.ReadKey();
            if (field == 1 && wire == 2) n = n with { Name = r.ReadString() };
            else if (field == 2 && wire == 2) n = n with { Map = r.ReadBytes().ToArray() };
            else if (field == 3 && wire == 0) n = n with { AddDummyPrefix = r.ReadBool() };
            else if (field == 4 && wire == 0) n = n with { RemoveExtraWhitespaces = r.ReadBool() };
            else if (field == 5 && wire == 0) n = n with { EscapeWhitespaces = r.ReadBool() };
            else r.Skip(wire);
        }
        return n;
    }
}
