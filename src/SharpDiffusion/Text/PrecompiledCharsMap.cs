using System.Buffers.Binary;

namespace SharpDiffusion.Text;

/// <summary>
/// sentencepiece's compiled normalization rules (e.g. <c>nmt_nfkc</c>: NFKC plus mapping control characters and odd
/// spaces): <c>&lt;uint32 LE trie size&gt;&lt;trie&gt;&lt;replacements&gt;</c>. The trie is a darts-clone double array of
/// uint32 units over UTF-8 bytes whose leaf values are offsets of NUL-terminated replacement strings. At each
/// position the longest matching source sequence wins (sentencepiece's Normalizer::NormalizePrefix). Every index
/// is checked, so a corrupt map gives an error naming the file instead of a wrong read.
/// </summary>
sealed class PrecompiledCharsMap
{
    readonly uint[] _units;
    readonly byte[] _replacements;
    readonly string _source;

    public PrecompiledCharsMap(byte[] blob, string source)
    {
        _source = source;
        if (blob.Length <= 4) throw Broken("it is shorter than its header");
        uint trieSize = BinaryPrimitives.ReadUInt32LittleEndian(blob);
        if (trieSize >= (uint)(blob.Length - 4) + 1 || trieSize % 4 != 0 || trieSize == 0)
            throw Broken($"its trie size {trieSize} does not fit the {blob.Length}-byte map");
        _units = new uint[trieSize / 4];
        for (int i = 0; i < _units.Length; i++)
            _units[i] = BinaryPrimitives.ReadUInt32LittleEndian(blob.AsSpan(4 + 4 * i));
        _replacements = blob[(4 + (int)trieSize)..];
    }

    /// <summary>The longest rule matching the start of <paramref name="input"/>: (bytes consumed, replacement);
    /// (0, empty) when none does.</summary>
    public (int Length, ReadOnlyMemory<byte> Replacement) LongestPrefix(ReadOnlySpan<byte> input)
    {
        // darts-clone unit: bit 8 has_leaf, bits 0-7 (+ bit 31) label, value = low 31 bits,
        // offset = (unit >> 10) << ((unit & (1 << 9)) >> 6).
        int longest = 0, value = 0;
        uint node = Offset(Unit(0));
        for (int i = 0; i < input.Length; i++)
        {
            node ^= input[i];
            uint unit = Unit(node);
            if ((unit & ((1u << 31) | 0xFF)) != input[i]) break;
            node ^= Offset(unit);
            if (((unit >> 8) & 1) == 1)
            {
                longest = i + 1;
                value = (int)(Unit(node) & ((1u << 31) - 1));
            }
        }
        if (longest == 0) return (0, ReadOnlyMemory<byte>.Empty);
        if (value >= _replacements.Length) throw Broken($"a rule points at byte {value} of {_replacements.Length} replacement bytes");
        int end = Array.IndexOf(_replacements, (byte)0, value);
        return (longest, _replacements.AsMemory(value, (end < 0 ? _replacements.Length : end) - value));
    }

    static uint Offset(uint unit) => (unit >> 10) << (int)((unit & (1u << 9)) >> 6);

    uint Unit(uint index) => index < _units.Length ? _units[index] : throw Broken($"the trie points at unit {index} of {_units.Length}");

    InvalidDataException Broken(string what) =>
        new($"{_source} is not a valid SentencePiece model: its precompiled_charsmap is corrupt ({what}); use the spiece.model of the tokenizer folder as written by sentencepiece/transformers.");
}
