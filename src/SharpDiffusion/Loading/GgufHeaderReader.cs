using System.Buffers.Binary;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace SharpDiffusion.Loading;

/// <summary>
/// Reads a GGUF header front to back (little-endian) through a small buffer, with every length and count checked
/// against the bytes left in the file before anything is allocated for it: a bogus count ends in a one-line error,
/// never a huge allocation.
/// </summary>
internal sealed class GgufHeaderReader(SafeFileHandle file, long fileLength, Func<string, Exception> corrupt)
{
    const int MaxNesting = 8; // arrays of arrays: deeper than any real file, shallow enough for the stack

    readonly byte[] _buffer = new byte[1 << 16];
    long _bufferStart;
    int _bufferCount;

    public long Position { get; private set; }
    public long Remaining => fileLength - Position;

    ReadOnlySpan<byte> Take(int count, string what)
    {
        if (count > Remaining)
            throw corrupt($"the file ends inside {what} at byte {Position} (truncated file?)");
        if (Position < _bufferStart || Position + count > _bufferStart + _bufferCount)
        {
            _bufferStart = Position;
            _bufferCount = 0;
            int wanted = (int)Math.Min(Math.Max(count, _buffer.Length), Remaining);
            var target = wanted <= _buffer.Length ? _buffer : new byte[wanted];
            while (_bufferCount < wanted)
            {
                int read = RandomAccess.Read(file, target.AsSpan(_bufferCount, wanted - _bufferCount), _bufferStart + _bufferCount);
                if (read == 0) throw corrupt($"the file ended while reading {what} at byte {Position}");
                _bufferCount += read;
            }
            if (!ReferenceEquals(target, _buffer))
            {
                // A long string: read once, not kept as the buffer.
                Position += count;
                _bufferCount = 0;
                return target.AsSpan(0, count);
            }
        }
        var span = _buffer.AsSpan((int)(Position - _bufferStart), count);
        Position += count;
        return span;
    }

    public byte U8(string what) => Take(1, what)[0];
    public uint U32(string what) => BinaryPrimitives.ReadUInt32LittleEndian(Take(4, what));
    public ulong U64(string what) => BinaryPrimitives.ReadUInt64LittleEndian(Take(8, what));

    /// <summary>A count of items each at least <paramref name="minimumBytes"/> long, refused if the file cannot hold them.</summary>
    public long Count(string what, int minimumBytes)
    {
        ulong n = U64(what);
        if (n > (ulong)(Remaining / Math.Max(minimumBytes, 1)))
            throw corrupt($"{what} is {n}, more than the {Remaining} bytes left can hold (truncated or not a GGUF file)");
        return (long)n;
    }

    /// <summary>gguf_string_t: a uint64 byte length, then UTF-8 without a terminator.</summary>
    public string String(string what)
    {
        ulong length = U64(what);
        if (length > (ulong)Remaining || length > int.MaxValue)
            throw corrupt($"{what} claims {length} bytes but {Remaining} are left (truncated or not a GGUF file)");
        return Encoding.UTF8.GetString(Take((int)length, what));
    }

    /// <summary>A metadata value of GGUF value type <paramref name="type"/> (gguf_metadata_value_type): numbers as their
    /// C# type, bool, string, arrays as typed arrays (string[], float[], ...) or object[] for arrays of arrays.</summary>
    public object Value(uint type, string key, int depth = 0) => type switch
    {
        0 => U8(key),
        1 => (sbyte)U8(key),
        2 => BinaryPrimitives.ReadUInt16LittleEndian(Take(2, key)),
        3 => BinaryPrimitives.ReadInt16LittleEndian(Take(2, key)),
        4 => U32(key),
        5 => BinaryPrimitives.ReadInt32LittleEndian(Take(4, key)),
        6 => BinaryPrimitives.ReadSingleLittleEndian(Take(4, key)),
        7 => U8(key) switch { 0 => false, 1 => true, var b => throw corrupt($"metadata '{key}' is a bool of value {b} (only 0 or 1)") },
        8 => String(key),
        9 => Array(key, depth),
        10 => U64(key),
        11 => BinaryPrimitives.ReadInt64LittleEndian(Take(8, key)),
        12 => BinaryPrimitives.ReadDoubleLittleEndian(Take(8, key)),
        _ => throw corrupt($"metadata '{key}' has value type {type}, which GGUF does not define (0-12)"),
    };

    /// <summary>Bytes one value of a type takes at least (strings: their length; arrays: type and count).</summary>
    static int MinimumSize(uint type) => type switch { 0 or 1 or 7 => 1, 2 or 3 => 2, 4 or 5 or 6 => 4, 8 or 10 or 11 or 12 => 8, 9 => 12, _ => 1 };

    object Array(string key, int depth)
    {
        if (depth >= MaxNesting)
            throw corrupt($"metadata '{key}' nests arrays more than {MaxNesting} deep");
        uint type = U32(key);
        long count = Count($"the length of metadata array '{key}'", MinimumSize(type));
        return type switch
        {
            0 => Fill<byte>(count, () => U8(key)),
            4 => Fill(count, () => U32(key)),
            5 => Fill(count, () => (int)U32(key)),
            6 => Fill(count, () => BinaryPrimitives.ReadSingleLittleEndian(Take(4, key))),
            8 => Fill(count, () => String(key)),
            10 => Fill(count, () => U64(key)),
            11 => Fill(count, () => (long)U64(key)),
            _ => Fill(count, () => Value(type, key, depth + 1)),
        };
    }

    /// <summary>Grown as values are read, not allocated from the count: a count the file only claims ends at its end.</summary>
    static T[] Fill<T>(long count, Func<T> read)
    {
        var values = new List<T>((int)Math.Min(count, 4096));
        for (long i = 0; i < count; i++) values.Add(read());
        return values.ToArray();
    }
}
