using System.Buffers.Binary;
using System.Numerics;
using System.Text;
using static TorchSharp.torch;

namespace SharpDiffusion.Loading.Pickle;

/// <summary>
/// The part of Python's pickle VM (protocols 2–5, the binary opcodes torch.save writes) that a state dict needs,
/// with an allow-list of globals instead of imports: a tensor becomes a <see cref="TorchTensorRef"/> (a view of a
/// storage, nothing read), dicts become <see cref="OrderedDictionary{TKey,TValue}"/>, the few numpy and
/// pytorch_lightning objects checkpoints carry beside the weights become inert <see cref="PickleObject"/>s, and any
/// other global is refused at the opcode that names it. Nothing from the file is ever executed.
/// </summary>
public sealed class RestrictedUnpickler
{
    enum Kind { RebuildTensor, RebuildParameter, OrderedDict, Size, Storage, Value, Placeholder, Reconstructor, Encode }

    static readonly Dictionary<string, TorchStorageType> StorageTypes = new TorchStorageType[]
    {
        new("FloatStorage", ScalarType.Float32, 4), new("HalfStorage", ScalarType.Float16, 2),
        new("BFloat16Storage", ScalarType.BFloat16, 2), new("DoubleStorage", ScalarType.Float64, 8),
        new("LongStorage", ScalarType.Int64, 8), new("IntStorage", ScalarType.Int32, 4),
        new("ShortStorage", ScalarType.Int16, 2), new("CharStorage", ScalarType.Int8, 1),
        new("ByteStorage", ScalarType.Byte, 1), new("BoolStorage", ScalarType.Bool, 1),
    }.ToDictionary(t => "torch." + t.Name);

    /// <summary>Every global a checkpoint may name. Only the torch rebuild functions, OrderedDict, torch.Size and
    /// _codecs.encode (str → latin-1 bytes) are "called", by our own code; the rest are values or inert placeholders.</summary>
    static readonly Dictionary<string, Kind> Allowed = new()
    {
        ["torch._utils._rebuild_tensor"] = Kind.RebuildTensor,
        ["torch._utils._rebuild_tensor_v2"] = Kind.RebuildTensor,
        ["torch._utils._rebuild_parameter"] = Kind.RebuildParameter,
        ["torch._utils._rebuild_parameter_with_state"] = Kind.RebuildParameter,
        ["collections.OrderedDict"] = Kind.OrderedDict,
        ["torch.Size"] = Kind.Size,
        ["torch.float16"] = Kind.Value, ["torch.float32"] = Kind.Value, ["torch.bfloat16"] = Kind.Value,
        ["torch.float64"] = Kind.Value, ["torch.int64"] = Kind.Value, ["torch.int32"] = Kind.Value,
        ["torch.int16"] = Kind.Value, ["torch.int8"] = Kind.Value, ["torch.uint8"] = Kind.Value, ["torch.bool"] = Kind.Value,
        // What real SD checkpoints carry beside the weights (global_step as a numpy scalar, Lightning callback states).
        ["numpy.core.multiarray.scalar"] = Kind.Placeholder, ["numpy._core.multiarray.scalar"] = Kind.Placeholder,
        ["numpy.core.multiarray._reconstruct"] = Kind.Placeholder, ["numpy._core.multiarray._reconstruct"] = Kind.Placeholder,
        ["numpy.dtype"] = Kind.Placeholder, ["numpy.ndarray"] = Kind.Placeholder,
        ["pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint"] = Kind.Placeholder,
        ["lightning.pytorch.callbacks.model_checkpoint.ModelCheckpoint"] = Kind.Placeholder,
        ["builtins.object"] = Kind.Placeholder,
        ["copyreg._reconstructor"] = Kind.Reconstructor,
        ["_codecs.encode"] = Kind.Encode,
    };

    /// <summary>The names this reader accepts (for messages and documentation).</summary>
    public static IEnumerable<string> AllowedGlobals => Allowed.Keys.Concat(StorageTypes.Keys);

    static readonly object Mark = new();

    readonly byte[] _data;
    readonly string _source;
    int _pos;
    readonly List<object?> _stack = [];
    readonly List<int> _marks = [];
    readonly Dictionary<long, object?> _memo = [];

    readonly bool _partial;

    RestrictedUnpickler(byte[] data, int start, string source, bool partial)
    {
        _data = data;
        _pos = start;
        _source = source;
        _partial = partial;
    }

    /// <summary>Reads one pickle. <paramref name="source"/> names the file in messages (one line, InvalidDataException).</summary>
    public static object? Load(byte[] data, string source) => new RestrictedUnpickler(data, 0, source, partial: false).Run();

    /// <summary>Reads the pickle starting at <paramref name="start"/> of a buffer that may hold only the start of the
    /// file (<paramref name="partial"/>): running past its end throws <see cref="NeedMoreDataException"/>.
    /// <paramref name="end"/> is where the next pickle or data begins.</summary>
    public static object? Load(byte[] data, int start, string source, bool partial, out int end)
    {
        var reader = new RestrictedUnpickler(data, start, source, partial);
        object? value = reader.Run();
        end = reader._pos;
        return value;
    }

    /// <summary>The buffer ended inside the pickle; read more of the file and start again.</summary>
    public sealed class NeedMoreDataException : Exception;

    Exception Truncated(string what) => _partial ? new NeedMoreDataException() : Corrupt(what);

    InvalidDataException Corrupt(string what) =>
        new($"Corrupt PyTorch pickle {_source}: {Clean(what)} at byte {_pos}. Re-download or re-save the file.");

    static string Clean(string s) => string.Concat(s.Take(200).Select(c => char.IsControl(c) ? ' ' : c));

    object? Run()
    {
        while (true)
        {
            if (_pos >= _data.Length)
                throw Truncated("the pickle ends without STOP (truncated?)");
            byte op = _data[_pos++];
            switch (op)
            {
                case 0x80: ReadByte(); break;                    // PROTO n
                case 0x95: ReadBytes(8); break;                  // FRAME: a length hint for buffered readers
                case (byte)'.':                                  // STOP
                    if (_stack.Count != 1 || _marks.Count != 0)
                        throw Corrupt($"STOP with {_stack.Count} values on the stack");
                    return _stack[0];
                case (byte)'(': _marks.Add(_stack.Count); _stack.Add(Mark); break;
                case (byte)'0': Pop(); break;                    // POP
                case (byte)'1': PopMark(); break;                // POP_MARK
                case (byte)'2': Push(Peek()); break;             // DUP
                case (byte)'N': Push(null); break;
                case 0x88: Push(true); break;                    // NEWTRUE
                case 0x89: Push(false); break;                   // NEWFALSE
                case (byte)'J': Push((long)BinaryPrimitives.ReadInt32LittleEndian(ReadBytes(4))); break;   // BININT
                case (byte)'K': Push((long)ReadByte()); break;                                             // BININT1
                case (byte)'M': Push((long)BinaryPrimitives.ReadUInt16LittleEndian(ReadBytes(2))); break;  // BININT2
                case 0x8a: Push(ReadLong(ReadByte())); break;                                              // LONG1
                case 0x8b: Push(ReadLong(ReadLength(4))); break;                                           // LONG4
                case (byte)'G': Push(BinaryPrimitives.ReadDoubleBigEndian(ReadBytes(8))); break;           // BINFLOAT
                case 0x8c: Push(ReadString(ReadByte())); break;                                            // SHORT_BINUNICODE
                case (byte)'X': Push(ReadString(ReadLength(4))); break;                                    // BINUNICODE
                case 0x8d: Push(ReadString(ReadLength(8))); break;                                         // BINUNICODE8
                case (byte)'U': Push(Encoding.Latin1.GetString(ReadBytes(ReadByte()))); break;             // SHORT_BINSTRING
                case (byte)'T': Push(Encoding.Latin1.GetString(ReadBytes(ReadLength(4)))); break;          // BINSTRING
                case (byte)'C': Push(ReadBytes(ReadByte()).ToArray()); break;                              // SHORT_BINBYTES
                case (byte)'B': Push(ReadBytes(ReadLength(4)).ToArray()); break;                           // BINBYTES
                case 0x8e: Push(ReadBytes(ReadLength(8)).ToArray()); break;                                // BINBYTES8
                case (byte)'}': Push(new OrderedDictionary<object, object?>()); break;                     // EMPTY_DICT
                case (byte)']': Push(new List<object?>()); break;                                          // EMPTY_LIST
                case 0x8f: Push(new List<object?>()); break;                                               // EMPTY_SET
                case (byte)')': Push(Array.Empty<object?>()); break;                                       // EMPTY_TUPLE
                case (byte)'t': Push(PopMark().ToArray()); break;                                          // TUPLE
                case 0x85: Push(PopN(1)); break;                                                           // TUPLE1
                case 0x86: Push(PopN(2)); break;                                                           // TUPLE2
                case 0x87: Push(PopN(3)); break;                                                           // TUPLE3
                case 0x91: Push(PopMark()); break;                                                         // FROZENSET
                case (byte)'l': Push(PopMark()); break;                                                    // LIST
                case (byte)'d': { var d = new OrderedDictionary<object, object?>(); SetItems(d, PopMark()); Push(d); break; } // DICT
                case (byte)'s': { var v = Pop(); var k = Pop(); SetItems(Peek(), [k, v]); break; }         // SETITEM
                case (byte)'u': { var items = PopMark(); SetItems(Peek(), items); break; }                 // SETITEMS
                case (byte)'a': { var v = Pop(); Append(Peek(), [v]); break; }                             // APPEND
                case (byte)'e': case 0x90: { var items = PopMark(); Append(Peek(), items); break; }        // APPENDS, ADDITEMS
                case (byte)'q': _memo[ReadByte()] = Peek(); break;                                         // BINPUT
                case (byte)'r': _memo[BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(4))] = Peek(); break; // LONG_BINPUT
                case 0x94: _memo[_memo.Count] = Peek(); break;                                             // MEMOIZE
                case (byte)'h': Push(Get(ReadByte())); break;                                              // BINGET
                case (byte)'j': Push(Get(BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(4)))); break;   // LONG_BINGET
                case (byte)'c': Push(Global(ReadLine(), ReadLine())); break;                               // GLOBAL
                case 0x93: { var name = Pop(); var module = Pop(); Push(Global(AsString(module), AsString(name))); break; } // STACK_GLOBAL
                case (byte)'R': { var args = AsTuple(Pop()); Push(Call(Pop(), args)); break; }             // REDUCE
                case 0x81: { var args = AsTuple(Pop()); Push(New(Pop(), args)); break; }                   // NEWOBJ
                case 0x92: { Pop(); var args = AsTuple(Pop()); Push(New(Pop(), args)); break; }            // NEWOBJ_EX (kwargs dropped)
                case (byte)'b': { var state = Pop(); if (Peek() is PickleObject o) o.State = state; break; } // BUILD
                case (byte)'Q': Push(PersistentLoad(Pop())); break;                                        // BINPERSID
                default:
                    _pos--;
                    throw Corrupt($"unsupported pickle opcode 0x{op:x2}");
            }
        }
    }

    byte ReadByte() => _pos < _data.Length ? _data[_pos++] : throw Truncated("the pickle ends inside an opcode (truncated?)");

    ReadOnlySpan<byte> ReadBytes(long n)
    {
        if (n >= 0 && n > _data.Length - _pos && _partial)
            throw new NeedMoreDataException();
        if (n < 0 || n > _data.Length - _pos)
            throw Corrupt($"an opcode claims {n} bytes but {_data.Length - _pos} remain (truncated?)");
        var span = _data.AsSpan(_pos, (int)n);
        _pos += (int)n;
        return span;
    }

    long ReadLength(int width) => width == 4
        ? BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(4))
        : (long)Math.Min(BinaryPrimitives.ReadUInt64LittleEndian(ReadBytes(8)), long.MaxValue);

    string ReadString(long n)
    {
        var bytes = ReadBytes(n);
        try { return new UTF8Encoding(false, true).GetString(bytes); }
        catch (DecoderFallbackException) { throw Corrupt("a string is not valid UTF-8"); }
    }

    string ReadLine()
    {
        int end = Array.IndexOf(_data, (byte)'\n', _pos);
        if (end < 0 && _partial && _data.Length - _pos <= 1000)
            throw new NeedMoreDataException();
        if (end < 0 || end - _pos > 1000)
            throw Corrupt("a GLOBAL name is not terminated");
        string s = Encoding.ASCII.GetString(_data, _pos, end - _pos);
        _pos = end + 1;
        return s;
    }

    /// <summary>Python's two's-complement little-endian long; kept as long when it fits.</summary>
    object ReadLong(long n)
    {
        var bytes = ReadBytes(n);
        if (n == 0) return 0L;
        var value = new BigInteger(bytes, isUnsigned: false, isBigEndian: false);
        return value >= long.MinValue && value <= long.MaxValue ? (long)value : value;
    }

    void Push(object? value) => _stack.Add(value);

    object? Peek()
    {
        if (_stack.Count == 0 || (_marks.Count > 0 && _marks[^1] == _stack.Count))
            throw Corrupt("an opcode needs a value but the stack is empty");
        return _stack[^1];
    }

    object? Pop()
    {
        var v = Peek();
        _stack.RemoveAt(_stack.Count - 1);
        return v;
    }

    object?[] PopN(int n)
    {
        var items = new object?[n];
        for (int i = n - 1; i >= 0; i--) items[i] = Pop();
        return items;
    }

    List<object?> PopMark()
    {
        if (_marks.Count == 0)
            throw Corrupt("an opcode needs a MARK but there is none");
        int at = _marks[^1];
        _marks.RemoveAt(_marks.Count - 1);
        var items = _stack.GetRange(at + 1, _stack.Count - at - 1);
        _stack.RemoveRange(at, _stack.Count - at);
        return items;
    }

    object? Get(long key) => _memo.TryGetValue(key, out var v) ? v : throw Corrupt($"memo entry {key} was never stored");

    void SetItems(object? target, List<object?> items)
    {
        if (target is not OrderedDictionary<object, object?> dict)
            throw Corrupt($"SETITEM(S) on a {Describe(target)}, not a dict");
        if (items.Count % 2 != 0)
            throw Corrupt("SETITEMS with an odd number of values");
        for (int i = 0; i < items.Count; i += 2)
        {
            object key = items[i] switch
            {
                null => throw Corrupt("a dict key is None"),
                List<object?> => throw Corrupt("a dict key is a list"),
                var k => k,
            };
            dict[key] = items[i + 1];
        }
    }

    void Append(object? target, List<object?> items)
    {
        if (target is not List<object?> list)
            throw Corrupt($"APPEND(S) on a {Describe(target)}, not a list");
        list.AddRange(items);
    }

    static string Describe(object? o) => o switch
    {
        null => "None",
        string => "string",
        OrderedDictionary<object, object?> => "dict",
        object?[] => "tuple",
        List<object?> => "list",
        _ => o.GetType().Name,
    };

    string AsString(object? o) => o as string ?? throw Corrupt($"a global's name is a {Describe(o)}, not a string");

    object?[] AsTuple(object? o) => o as object?[] ?? throw Corrupt($"call arguments are a {Describe(o)}, not a tuple");

    object Global(string module, string name)
    {
        string full = $"{module}.{name}";
        if (StorageTypes.TryGetValue(full, out var storage))
            return storage;
        if (Allowed.ContainsKey(full))
            return new PickleGlobal(module, name);
        throw new InvalidDataException($"{_source} refers to {Clean(full)}, which a tensor checkpoint never needs: refused, nothing in the file was run " +
            "(only torch tensor/storage rebuilding, OrderedDict and a few numpy/pytorch_lightning names are allowed). If you trust the file, re-save its tensors as .safetensors.");
    }

    object? Call(object? callable, object?[] args)
    {
        if (callable is not PickleGlobal g)
            throw Corrupt($"REDUCE calls a {Describe(callable)}, not an allowed global");
        switch (Allowed[g.FullName])
        {
            case Kind.RebuildTensor:
                return RebuildTensor(args);
            case Kind.RebuildParameter:
                return args.Length >= 1 && args[0] is TorchTensorRef t ? t : throw Corrupt($"{g} without a tensor");
            case Kind.OrderedDict:
                var dict = new OrderedDictionary<object, object?>();
                if (args.Length > 0 && args[0] is List<object?> pairs)
                    foreach (var pair in pairs)
                        if (pair is object?[] { Length: 2 } kv) SetItems(dict, [kv[0], kv[1]]);
                return dict;
            case Kind.Size:
                return args.Length == 1 && args[0] is object?[] dims ? dims : throw Corrupt("torch.Size without a tuple");
            case Kind.Encode:
                // _codecs.encode(text, 'latin1'): how protocol-2 pickles store numpy's raw bytes.
                return args.Length >= 1 && args[0] is string s ? Encoding.Latin1.GetBytes(s) : throw Corrupt("_codecs.encode without a string");
            case Kind.Reconstructor:
                // copyreg._reconstructor(cls, base, state): object.__new__ for an allowed placeholder class.
                return args.Length >= 1 && args[0] is PickleGlobal cls && Allowed[cls.FullName] == Kind.Placeholder
                    ? new PickleObject(cls.FullName, args)
                    : throw Corrupt("copyreg._reconstructor of something other than an allowed class");
            case Kind.Placeholder:
                return new PickleObject(g.FullName, args);
            default:
                throw Corrupt($"{g} is a value, not something to call");
        }
    }

    /// <summary>NEWOBJ: <c>cls.__new__(cls, *args)</c>.</summary>
    object New(object? cls, object?[] args) => cls is PickleGlobal g
        ? Allowed[g.FullName] switch
        {
            Kind.OrderedDict => new OrderedDictionary<object, object?>(),
            Kind.Placeholder => new PickleObject(g.FullName, args),
            _ => throw Corrupt($"NEWOBJ of {g}, which is not a class"),
        }
        : throw Corrupt($"NEWOBJ of a {Describe(cls)}, not an allowed class");

    /// <summary>torch's persistent id: <c>('storage', storage_type, key, location, numel)</c>.</summary>
    TorchStorageRef PersistentLoad(object? pid)
    {
        if (pid is not object?[] { Length: >= 5 } t || t[0] as string != "storage")
            throw Corrupt("a persistent id is not a ('storage', type, key, location, numel) tuple");
        // The legacy format adds view_metadata, set only for storage views of torch before 0.4.
        if (t.Length > 5 && t[5] is not null)
            throw Corrupt("a storage view of torch before 0.4 (not supported)");
        if (t[1] is not TorchStorageType type)
            throw Corrupt($"a storage of type {Describe(t[1])} {t[1]}");
        string key = t[2] switch
        {
            string s => s,
            long n => n.ToString(System.Globalization.CultureInfo.InvariantCulture),
            var other => throw Corrupt($"a storage key is a {Describe(other)}"),
        };
        if (t[4] is not long numel || numel < 0)
            throw Corrupt($"storage {key} has no valid element count");
        return new TorchStorageRef(type, key, numel);
    }

    /// <summary>_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]).</summary>
    TorchTensorRef RebuildTensor(object?[] args)
    {
        if (args.Length < 4 || args[0] is not TorchStorageRef storage || args[1] is not long offset)
            throw Corrupt("_rebuild_tensor_v2 without (storage, offset, size, stride)");
        long[] shape = Longs(args[2], "size"), stride = Longs(args[3], "stride");
        if (shape.Length != stride.Length)
            throw Corrupt($"a tensor has {shape.Length} sizes but {stride.Length} strides");
        if (offset < 0 || shape.Any(d => d < 0) || stride.Any(s => s < 0))
            throw Corrupt("a tensor has a negative offset, size or stride");
        return new TorchTensorRef(storage, offset, shape, stride);
    }

    long[] Longs(object? o, string what) => o is object?[] items && items.All(i => i is long)
        ? items.Select(i => (long)i!).ToArray()
        : throw Corrupt($"a tensor's {what} is not a tuple of integers");
}
