using System.Text;

namespace SharpDiffusion.Text;

/// <summary>
/// sentencepiece's Normalizer::Normalize over UTF-8 bytes: each step takes the longest user-defined piece (kept
/// as is), else the longest charsmap rule (its replacement), else one UTF-8 character (a malformed byte becomes
/// U+FFFD). With remove_extra_whitespaces, leading and trailing spaces go and runs of spaces become one; with
/// add_dummy_prefix a space is put in front (behind with treat_whitespace_as_suffix); with escape_whitespaces every
/// space is written as "▁" (U+2581). "  Hello   world " → "▁Hello▁world".
/// </summary>
sealed class SentencePieceNormalizer
{
    static readonly byte[] SpaceSymbol = Encoding.UTF8.GetBytes("\u2581");
    static readonly byte[] Replacement = [0xEF, 0xBF, 0xBD];

    readonly SentencePieceModel _model;
    readonly PrecompiledCharsMap? _charsMap;
    readonly byte[][] _userDefined;

    public SentencePieceNormalizer(SentencePieceModel model)
    {
        _model = model;
        _charsMap = model.PrecompiledCharsMap.Length > 0 ? new PrecompiledCharsMap(model.PrecompiledCharsMap, model.Source) : null;
        _userDefined = model.Pieces.Where(p => p.Type == SentencePieceType.UserDefined).Select(p => Encoding.UTF8.GetBytes(p.Piece)).ToArray();
    }

    public byte[] Normalize(string text)
    {
        ReadOnlySpan<byte> input = Encoding.UTF8.GetBytes(text);
        var output = new List<byte>(input.Length * 3);
        bool removeExtra = _model.RemoveExtraWhitespaces;

        if (removeExtra)
            while (input.Length > 0)
            {
                int length = NormalizePrefix(input, out var replacement);
                if (!replacement.SequenceEqual(" "u8)) break;
                input = input[length..];
            }
        if (input.Length == 0) return [];

        if (!_model.TreatWhitespaceAsSuffix && _model.AddDummyPrefix) AddSpace(output);

        bool previousIsSpace = removeExtra;
        while (input.Length > 0)
        {
            int length = NormalizePrefix(input, out var replacement);
            if (previousIsSpace)
                while (replacement.Length > 0 && replacement[0] == (byte)' ') replacement = replacement[1..];
            if (replacement.Length > 0)
            {
                foreach (byte b in replacement)
                {
                    if (b == (byte)' ' && _model.EscapeWhitespaces) output.AddRange(SpaceSymbol);
                    else output.Add(b);
                }
                previousIsSpace = replacement[^1] == (byte)' ';
            }
            input = input[length..];
            if (!removeExtra) previousIsSpace = false;
        }

        if (removeExtra)
        {
            byte[] space = _model.EscapeWhitespaces ? SpaceSymbol : [(byte)' '];
            while (output.Count >= space.Length && System.Runtime.InteropServices.CollectionsMarshal.AsSpan(output)[^space.Length..].SequenceEqual(space))
                output.RemoveRange(output.Count - space.Length, space.Length);
        }

        if (_model.TreatWhitespaceAsSuffix && _model.AddDummyPrefix) AddSpace(output);
        return [.. output];
    }

    void AddSpace(List<byte> output)
    {
        if (_model.EscapeWhitespaces) output.AddRange(SpaceSymbol);
        else output.Add((byte)' ');
    }

    /// <summary>Bytes of <paramref name="input"/> consumed by the next step, and what they become.</summary>
    int NormalizePrefix(ReadOnlySpan<byte> input, out ReadOnlySpan<byte> replacement)
    {
        int userDefined = 0;
        foreach (var piece in _userDefined)
            if (piece.Length > userDefined && input.StartsWith(piece)) userDefined = piece.Length;
        if (userDefined > 0)
        {
            replacement = input[..userDefined];
            return userDefined;
        }

        if (_charsMap is not null)
        {
            var (length, rule) = _charsMap.LongestPrefix(input);
            if (length > 0)
            {
                replacement = rule.Span;
                return length;
            }
        }

        int charLength = Utf8.ValidCharLength(input);
        replacement = charLength > 0 ? input[..charLength] : Replacement;
        return Math.Max(charLength, 1);
    }
}

/// <summary>UTF-8 character lengths as sentencepiece's string_util::IsValidDecodeUTF8 checks them.</summary>
static class Utf8
{
    /// <summary>The length of the well-formed character at the start, or 0 when it is malformed or cut short.</summary>
    public static int ValidCharLength(ReadOnlySpan<byte> input) =>
        System.Text.Rune.DecodeFromUtf8(input, out _, out int consumed) == System.Buffers.OperationStatus.Done ? consumed : 0;
}
