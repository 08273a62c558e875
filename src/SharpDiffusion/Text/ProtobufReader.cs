namespace SharpDiffusion.Text;

/// <summary>
/// The protobuf wire format, just enough to read <c>spiece.model</c> (a <c>sentencepiece.ModelProto</c>): each field
/// is a varint key <c>(number &lt;&lt; 3) | wire type</c> followed by a varint (0), 8 bytes (1), a varint length and
/// that many bytes (2) or 4 bytes (5). Every length is checked against what is left, so a truncated or corrupt file
/// gives <see cref="InvalidDataException"/> naming <see cref="Source"/>, never an out-of-range read.
/// </summary>
ref struct ProtobufReader
{
    readonly ReadOnlySpan<byte> _data;
    int _position;

    public ProtobufReader(ReadOnlySpan<byte> data, string source)
    {
        _data = data;
        Source = source;
    }

    public string Source { get; }

    public readonly bool AtEnd => _position >= _data.Length;

    /// <summary>The next field's number and wire type.</summary>
    public (int Field, int WireType) ReadKey()
    {
        ulong key = ReadVarint();
        if (key >> 3 is 0 or > int.MaxValue) throw Broken($"field number {key >> 3} at byte {_position}");
        return ((int)(key >> 3), (int)(key & 7));
    }

    public ulong ReadVarint()
    {
        ulong value = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (_position >= _data.Length) throw Broken("a number runs past the end");
            byte b = _data[_position++];
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return value;
        }
        throw Broken($"a number longer than 10 bytes at byte {_position}");
    }

    /// <summary>proto2 int32: a negative value is sent as a 64-bit varint, so the low 32 bits are the value.</summary>
    public int ReadInt32() => unchecked((int)ReadVarint());

    public bool ReadBool() => ReadVarint() != 0;

    public float ReadFloat() => BitConverter.Int32BitsToSingle(System.Buffers.Binary.BinaryPrimitives.ReadInt32LittleEndian(Take(4)));

    /// <summary>A length-delimited field: bytes, a string or an embedded message.</summary>
    public ReadOnlySpan<byte> ReadBytes()
    {
        ulong length = ReadVarint();
        if (length > (ulong)(_data.Length - _position)) throw Broken($"a field of {length} bytes at byte {_position} runs past the end");
        return Take((int)length);
    }

    public string ReadString()
    {
        var bytes = ReadBytes();
        try { return StrictUtf8.GetString(bytes); }
        catch (System.Text.DecoderFallbackException) { throw Broken("a string that is not UTF-8"); }
    }

    /// <summary>Passes over a field this reader does not use.</summary>
    public void Skip(int wireType)
    {
        switch (wireType)
        {
            case 0: ReadVarint(); break;
            case 1: Take(8); break;
            case 2: ReadBytes(); break;
            case 5: Take(4); break;
            default: throw Broken($"wire type {wireType} at byte {_position}");
        }
    }

    ReadOnlySpan<byte> Take(int count)
    {
        if (count > _data.Length - _position) throw Broken($"{count} bytes wanted at byte {_position}, past the end");
        var span = _data.Slice(_position, count);
        _position += count;
        return span;
    }

    public readonly InvalidDataException Broken(string what) =>
        new($"{Source} is not a valid SentencePiece model: {what}; use the spiece.model of the tokenizer folder as written by sentencepiece/transformers.");

    static readonly System.Text.UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
}
