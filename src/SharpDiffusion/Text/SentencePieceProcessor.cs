using System.Text;

namespace SharpDiffusion.Text;

/// <summary>
/// sentencepiece's SentencePieceProcessor for a unigram model, as Python's <c>sp_model.encode(text, out_type=str)</c>:
/// <see cref="SentencePieceNormalizer"/>, then the most probable segmentation (Viterbi over the pieces' log
/// probabilities, unigram_model.cc's EncodeOptimized), then a run of unknown pieces merged into one.
/// Thread-safe once built.
/// </summary>
public sealed class SentencePieceProcessor
{
    // unigram_model.cc: a character no piece covers costs the lowest piece score minus 10.
    const float UnknownPenalty = 10.0f;

    readonly SentencePieceModel _model;
    readonly SentencePieceNormalizer _normalizer;
    readonly Dictionary<string, int> _matchable = new(StringComparer.Ordinal);   // normal, user-defined, unused
    readonly Dictionary<string, int> _reserved = new(StringComparer.Ordinal);    // control, unknown, byte
    readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _lookup;
    readonly int _longestPiece;
    readonly float _minScore, _maxScore;

    public SentencePieceProcessor(SentencePieceModel model)
    {
        _model = model;
        _normalizer = new SentencePieceNormalizer(model);
        _minScore = float.MaxValue;
        _maxScore = BitConverter.Int32BitsToSingle(0x00800000); // FLT_MIN: sentencepiece's starting maximum, kept as it sets user-defined scores
        for (int id = 0; id < model.Pieces.Count; id++)
        {
            var p = model.Pieces[id];
            bool matchable = p.Type is SentencePieceType.Normal or SentencePieceType.UserDefined or SentencePieceType.Unused;
            (matchable ? _matchable : _reserved)[p.Piece] = id;
            if (matchable) _longestPiece = Math.Max(_longestPiece, p.Piece.Length);
            if (p.Type == SentencePieceType.Normal)
                (_minScore, _maxScore) = (Math.Min(_minScore, p.Score), Math.Max(_maxScore, p.Score));
        }
        _lookup = _matchable.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    public SentencePieceModel Model => _model;

    public static SentencePieceProcessor Load(string path) => new(SentencePieceModel.Load(path));

    /// <summary>Number of pieces (Python's <c>len(sp_model)</c>).</summary>
    public int PieceCount => _model.Pieces.Count;

    public int UnkId => _model.UnkId;

    /// <summary>The id of a piece, the unknown id for anything else (sentencepiece's PieceToId).</summary>
    public int PieceToId(string piece) =>
        _reserved.TryGetValue(piece, out int id) || _matchable.TryGetValue(piece, out id) ? id : _model.UnkId;

    /// <summary>The pieces of <paramref name="text"/> with their ids; "Hello world" → ("▁Hello", id), ("▁world", id).</summary>
    public IReadOnlyList<(string Piece, int Id)> Encode(string text)
    {
        string normalized = Encoding.UTF8.GetString(_normalizer.Normalize(text));
        var result = new List<(string Piece, int Id)>();
        bool previousUnknown = false;
        foreach (var (start, length, id) in Segment(normalized))
        {
            string piece = normalized.Substring(start, length);
            bool unknown = id == _model.UnkId;
            if (unknown && _model.ByteFallback)
                foreach (byte b in Encoding.UTF8.GetBytes(piece))
                    result.Add(($"<0x{b:X2}>", PieceToId($"<0x{b:X2}>")));
            else if (unknown && previousUnknown)
                result[^1] = (result[^1].Piece + piece, id); // a run of unknown characters is one unknown piece
            else
                result.Add((piece, id));
            previousUnknown = unknown;
        }
        return result;
    }

    /// <summary>
    /// The best path: score[e] is the highest total score of pieces covering [0, e), and where its last piece starts.
    /// From each character start every piece that matches is tried (shortest first; a later one must score strictly
    /// higher); a character no single-character piece covers may be taken as unknown.
    /// </summary>
    List<(int Start, int Length, int Id)> Segment(string s)
    {
        var score = new float[s.Length + 1];
        var from = new int[s.Length + 1];
        var ids = new int[s.Length + 1];
        Array.Fill(from, -1);
        float unknownScore = _minScore - UnknownPenalty;

        for (int start = 0; start < s.Length; start = NextChar(s, start))
        {
            float here = score[start];
            int charEnd = NextChar(s, start);
            bool singleCharPiece = false;
            for (int end = start; end < s.Length && (end = NextChar(s, end)) - start <= _longestPiece;)
            {
                if (!_lookup.TryGetValue(s.AsSpan(start, end - start), out int id)) continue;
                var piece = _model.Pieces[id];
                if (piece.Type == SentencePieceType.Unused) continue;
                // In double, as there; a user-defined piece gets a bonus so it always wins: UTF-8 length × max score − 0.1.
                double pieceScore = piece.Type == SentencePieceType.UserDefined
                    ? (float)(Encoding.UTF8.GetByteCount(s.AsSpan(start, end - start)) * _maxScore) - 0.1
                    : piece.Score;
                double candidate = pieceScore + here;
                if (from[end] < 0 || candidate > score[end]) (score[end], from[end], ids[end]) = ((float)candidate, start, id);
                if (end == charEnd) singleCharPiece = true;
            }
            if (!singleCharPiece)
            {
                float candidate = unknownScore + here;
                if (from[charEnd] < 0 || candidate > score[charEnd]) (score[charEnd], from[charEnd], ids[charEnd]) = (candidate, start, _model.UnkId);
            }
        }

        var path = new List<(int, int, int)>();
        for (int end = s.Length; end > 0; end = from[end])
            path.Add((from[end], end - from[end], ids[end]));
        path.Reverse();
        return path;
    }

    static int NextChar(string s, int i) => i + (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]) ? 2 : 1);
}
