using System.Buffers.Binary;
using System.Numerics;
using System.Text;

namespace OrleansGpu.Inference.Checkpoints;

/// <summary>
/// A restricted interpreter for the pickles <c>torch.save</c> writes for a state dict. Python's unpickler calls any
/// function a pickle names, which is how a checkpoint can run code; this one knows a fixed list of names, none of
/// which runs anything: <c>collections.OrderedDict</c> and <c>torch.Size</c> build plain containers, the
/// <c>torch._utils._rebuild_*</c> functions become <see cref="PickledTensor"/> descriptions, storage types and dtypes
/// are constants. Any other global, opcode or construct is refused with a <see cref="CheckpointException"/>
/// naming it. Work is linear in the pickle's length and nothing recurses, so a hostile pickle can neither run code
/// nor exhaust the stack.
/// </summary>
internal sealed class StateDictUnpickler(string source)
{
    // Bounds on what a state dict needs, so that a hostile length cannot allocate or loop for long.
    private const int MaxIntegerBytes = 64;
    private const int MaxTensorRank = 64;
    private const int MaxGlobalNameBytes = 256;

    // A state dict nests a few levels (DeBERTa's config: 3; a tensor's arguments: 3). Deeper is refused so that no
    // consumer of these values can be driven into deep recursion.
    private const int MaxNesting = 100;

    // Values on the stack or in the memo at once: far more than any state dict holds (two per tensor while its dict is
    // built), and a bound on the memory a small hostile pickle can make the reader allocate.
    private const int MaxValues = 4_000_000;

    private static readonly Dictionary<string, PickleGlobal> AllowedGlobals = BuildAllowList();

    private static readonly Dictionary<byte, string> OpcodeNames = new()
    {
        [(byte)'I'] = "INT", [(byte)'L'] = "LONG", [(byte)'S'] = "STRING", [(byte)'V'] = "UNICODE", [(byte)'F'] = "FLOAT",
        [(byte)'g'] = "GET", [(byte)'p'] = "PUT", [0x82] = "EXT1", [0x83] = "EXT2", [0x84] = "EXT4",
        [0x8f] = "EMPTY_SET", [0x90] = "ADDITEMS", [0x91] = "FROZENSET", [0x96] = "BYTEARRAY8",
        [0x97] = "NEXT_BUFFER", [0x98] = "READONLY_BUFFER",
    };

    // Element types PyTorch has that no encoder checkpoint read here uses; named so that the error says so.
    private static readonly HashSet<string> UnsupportedTypes =
    [
        "torch.uint16", "torch.uint32", "torch.uint64", "torch.complex64", "torch.complex128", "torch.cfloat", "torch.cdouble",
        "torch.float8_e4m3fn", "torch.float8_e5m2", "torch.ComplexFloatStorage", "torch.ComplexDoubleStorage",
        "torch.QInt8Storage", "torch.QUInt8Storage", "torch.QInt32Storage", "torch.QUInt4x2Storage", "torch.QUInt2x4Storage",
    ];

    private static readonly UTF8Encoding StrictUtf8 = new(false, throwOnInvalidBytes: true);

    private readonly List<StorageRef> _storages = [];

    /// <summary>Every storage the pickles loaded so far referred to (the legacy format needs their types).</summary>
    public IReadOnlyList<StorageRef> Storages => _storages;

    /// <summary>
    /// Interprets one pickle at the start of <paramref name="data"/> and returns its value; <paramref name="consumed"/>
    /// is the number of bytes up to and including its STOP opcode.
    /// </summary>
    public object? Load(ReadOnlySpan<byte> data, out int consumed)
    {
        var stack = new List<object?>();
        var marks = new Stack<int>();
        var memo = new Dictionary<long, object?>();
        var pos = 0;

        while (true)
        {
            var at = pos;
            if (pos >= data.Length)
            {
                throw Error(at, "the pickle ends without a STOP opcode (the file is truncated)");
            }

            if (stack.Count > MaxValues || memo.Count > MaxValues)
            {
                throw Error(at, $"more than {MaxValues} values at once, far more than a state dict holds");
            }

            var op = data[pos++];
            switch (op)
            {
                case 0x80: // PROTO
                    var protocol = Take(data, ref pos, 1, at)[0];
                    if (protocol > 5)
                    {
                        throw Error(at, $"pickle protocol {protocol} is newer than the 5 this reader knows");
                    }

                    break;
                case 0x95: // FRAME: framing is advisory, the opcodes inside follow as usual
                    var frame = BinaryPrimitives.ReadUInt64LittleEndian(Take(data, ref pos, 8, at));
                    if (frame > (ulong)(data.Length - pos))
                    {
                        throw Error(at, $"a frame of {frame} bytes runs past the end of the pickle");
                    }

                    break;
                case (byte)'.': // STOP
                    consumed = pos;
                    return Pop(stack, marks, at, op);
                case (byte)'(': // MARK
                    if (marks.Count >= MaxNesting)
                    {
                        throw Error(at, $"MARKs nested more than {MaxNesting} deep");
                    }

                    marks.Push(stack.Count);
                    break;
                case (byte)'0': // POP
                    if (stack.Count > (marks.Count > 0 ? marks.Peek() : 0))
                    {
                        stack.RemoveAt(stack.Count - 1);
                    }
                    else if (marks.Count > 0)
                    {
                        marks.Pop();
                    }
                    else
                    {
                        throw Error(at, "POP on an empty stack");
                    }

                    break;
                case (byte)'1': // POP_MARK
                    PopMark(stack, marks, at);
                    break;
                case (byte)'2': // DUP
                    stack.Add(Peek(stack, marks, at, op));
                    break;

                case (byte)'N': // NONE
                    stack.Add(null);
                    break;
                case 0x88: // NEWTRUE
                    stack.Add(true);
                    break;
                case 0x89: // NEWFALSE
                    stack.Add(false);
                    break;
                case (byte)'J': // BININT
                    stack.Add((long)BinaryPrimitives.ReadInt32LittleEndian(Take(data, ref pos, 4, at)));
                    break;
                case (byte)'K': // BININT1
                    stack.Add((long)Take(data, ref pos, 1, at)[0]);
                    break;
                case (byte)'M': // BININT2
                    stack.Add((long)BinaryPrimitives.ReadUInt16LittleEndian(Take(data, ref pos, 2, at)));
                    break;
                case 0x8a: // LONG1
                    stack.Add(ReadLong(Take(data, ref pos, Take(data, ref pos, 1, at)[0], at)));
                    break;
                case 0x8b: // LONG4
                    var longLength = BinaryPrimitives.ReadInt32LittleEndian(Take(data, ref pos, 4, at));
                    if (longLength is < 0 or > MaxIntegerBytes)
                    {
                        throw Error(at, $"an integer of {longLength} bytes is not something a state dict holds");
                    }

                    stack.Add(ReadLong(Take(data, ref pos, longLength, at)));
                    break;
                case (byte)'G': // BINFLOAT (big-endian)
                    stack.Add(BinaryPrimitives.ReadDoubleBigEndian(Take(data, ref pos, 8, at)));
                    break;

                case (byte)'X': // BINUNICODE
                    stack.Add(Utf8(Take(data, ref pos, Length32(data, ref pos, at), at), at));
                    break;
                case 0x8c: // SHORT_BINUNICODE
                    stack.Add(Utf8(Take(data, ref pos, Take(data, ref pos, 1, at)[0], at), at));
                    break;
                case 0x8d: // BINUNICODE8
                    stack.Add(Utf8(Take(data, ref pos, Length64(data, ref pos, at), at), at));
                    break;
                case (byte)'T': // BINSTRING (Python 2 str: the keys of checkpoints saved from Python 2)
                    stack.Add(Latin1(Take(data, ref pos, Length32(data, ref pos, at), at)));
                    break;
                case (byte)'U': // SHORT_BINSTRING
                    stack.Add(Latin1(Take(data, ref pos, Take(data, ref pos, 1, at)[0], at)));
                    break;
                case (byte)'B': // BINBYTES
                    stack.Add(Take(data, ref pos, Length32(data, ref pos, at), at).ToArray());
                    break;
                case (byte)'C': // SHORT_BINBYTES
                    stack.Add(Take(data, ref pos, Take(data, ref pos, 1, at)[0], at).ToArray());
                    break;
                case 0x8e: // BINBYTES8
                    stack.Add(Take(data, ref pos, Length64(data, ref pos, at), at).ToArray());
                    break;

                case (byte)']': // EMPTY_LIST
                    stack.Add(new PickleList());
                    break;
                case (byte)'l': // LIST
                    var list = new PickleList();
                    Grow(list, PopMark(stack, marks, at), at);
                    stack.Add(list);
                    break;
                case (byte)')': // EMPTY_TUPLE
                    stack.Add(new PickleTuple([]));
                    break;
                case (byte)'t': // TUPLE
                    stack.Add(Tuple(PopMark(stack, marks, at), at));
                    break;
                case 0x85: // TUPLE1
                case 0x86: // TUPLE2
                case 0x87: // TUPLE3
                    var arity = op - 0x84;
                    var items = new object?[arity];
                    for (var i = arity - 1; i >= 0; i--)
                    {
                        items[i] = Pop(stack, marks, at, op);
                    }

                    stack.Add(Tuple(items, at));
                    break;
                case (byte)'}': // EMPTY_DICT
                    stack.Add(new PickleDict());
                    break;
                case (byte)'d': // DICT
                    var dict = new PickleDict();
                    var dictItems = PopMark(stack, marks, at);
                    if (dictItems.Length % 2 != 0)
                    {
                        throw Error(at, "DICT with an odd number of items");
                    }

                    Grow(dict, dictItems, at);
                    stack.Add(dict);
                    break;
                case (byte)'s': // SETITEM
                    var value = Pop(stack, marks, at, op);
                    var key = Pop(stack, marks, at, op);
                    Grow(Target<PickleDict>(stack, marks, at, "SETITEM"), [key, value], at);
                    break;
                case (byte)'u': // SETITEMS
                    var pairs = PopMark(stack, marks, at);
                    if (pairs.Length % 2 != 0)
                    {
                        throw Error(at, "SETITEMS with an odd number of items");
                    }

                    Grow(Target<PickleDict>(stack, marks, at, "SETITEMS"), pairs, at);
                    break;
                case (byte)'a': // APPEND
                    var element = Pop(stack, marks, at, op);
                    Grow(Target<PickleList>(stack, marks, at, "APPEND"), [element], at);
                    break;
                case (byte)'e': // APPENDS
                    var elements = PopMark(stack, marks, at);
                    Grow(Target<PickleList>(stack, marks, at, "APPENDS"), elements, at);
                    break;

                case (byte)'q': // BINPUT
                    memo[Take(data, ref pos, 1, at)[0]] = Peek(stack, marks, at, op);
                    break;
                case (byte)'r': // LONG_BINPUT
                    memo[BinaryPrimitives.ReadUInt32LittleEndian(Take(data, ref pos, 4, at))] = Peek(stack, marks, at, op);
                    break;
                case 0x94: // MEMOIZE
                    memo[memo.Count] = Peek(stack, marks, at, op);
                    break;
                case (byte)'h': // BINGET
                    stack.Add(Recall(memo, Take(data, ref pos, 1, at)[0], at));
                    break;
                case (byte)'j': // LONG_BINGET
                    stack.Add(Recall(memo, BinaryPrimitives.ReadUInt32LittleEndian(Take(data, ref pos, 4, at)), at));
                    break;

                case (byte)'c': // GLOBAL
                    var module = Line(data, ref pos, at);
                    stack.Add(Global(module, Line(data, ref pos, at), at));
                    break;
                case 0x93: // STACK_GLOBAL
                    var globalName = Pop(stack, marks, at, op);
                    var globalModule = Pop(stack, marks, at, op);
                    if (globalModule is not string m || globalName is not string n)
                    {
                        throw Error(at, "STACK_GLOBAL without a module and a name");
                    }

                    stack.Add(Global(m, n, at));
                    break;
                case (byte)'R': // REDUCE
                    var arguments = Pop(stack, marks, at, op);
                    var callable = Pop(stack, marks, at, op);
                    stack.Add(Call(callable, arguments, at, "REDUCE"));
                    break;
                case 0x81: // NEWOBJ: only the container classes may be instantiated
                    var newArguments = Pop(stack, marks, at, op);
                    var cls = Pop(stack, marks, at, op);
                    if (cls is not PickleGlobal { Kind: GlobalKind.OrderedDict or GlobalKind.Size })
                    {
                        throw Error(at, $"NEWOBJ of {Describe(cls)} is refused: only containers are built");
                    }

                    stack.Add(Call(cls, newArguments, at, "NEWOBJ"));
                    break;
                case (byte)'b': // BUILD: sets an object's attributes; only OrderedDict's _metadata is expected
                    var state = Pop(stack, marks, at, op);
                    var built = Peek(stack, marks, at, op);
                    if (built is PickleDict target)
                    {
                        target.State = state;
                    }
                    else if (built is not PickledTensor)
                    {
                        throw Error(at, $"BUILD on {Describe(built)} is refused");
                    }

                    break;
                case (byte)'Q': // BINPERSID: a storage saved beside the pickle
                    stack.Add(Storage(Pop(stack, marks, at, op), at));
                    break;

                case (byte)'i': // INST
                    var instModule = Line(data, ref pos, at);
                    var instName = Line(data, ref pos, at);
                    throw Error(at, $"opcode INST (an instance of {Sanitize(instModule)}.{Sanitize(instName)}) is refused: a state dict holds no objects");
                case (byte)'o': // OBJ
                    throw Error(at, "opcode OBJ (an instance of a class on the stack) is refused: a state dict holds no objects");
                case 0x92: // NEWOBJ_EX
                    throw Error(at, "opcode NEWOBJ_EX is refused: a state dict holds no objects");
                case (byte)'P': // PERSID
                    throw Error(at, "opcode PERSID (a text persistent id) is refused: torch.save writes BINPERSID");
                default:
                    var name = OpcodeNames.TryGetValue(op, out var known) ? $"opcode {known}" : "an unknown opcode";
                    throw Error(at, $"{name} (0x{op:x2}) is not part of a state dict and is refused");
            }
        }
    }

    private CheckpointException Error(int at, string what) => new($"{source}: {what} (pickle byte {at}). Checkpoints are read, never executed.");

    private ReadOnlySpan<byte> Take(ReadOnlySpan<byte> data, ref int pos, long count, int at)
    {
        if (count < 0 || count > data.Length - pos)
        {
            throw Error(at, $"an opcode needs {count} bytes but the pickle ends first (the file is truncated or a length is wrong)");
        }

        var slice = data.Slice(pos, (int)count);
        pos += (int)count;
        return slice;
    }

    private long Length32(ReadOnlySpan<byte> data, ref int pos, int at) => BinaryPrimitives.ReadUInt32LittleEndian(Take(data, ref pos, 4, at));

    private long Length64(ReadOnlySpan<byte> data, ref int pos, int at) =>
        (long)Math.Min(BinaryPrimitives.ReadUInt64LittleEndian(Take(data, ref pos, 8, at)), long.MaxValue);

    private static object ReadLong(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length == 0)
        {
            return 0L;
        }

        var value = new BigInteger(bytes, isUnsigned: false, isBigEndian: false);
        return value >= long.MinValue && value <= long.MaxValue ? (object)(long)value : value;
    }

    private string Utf8(ReadOnlySpan<byte> bytes, int at)
    {
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw Error(at, "a string that is not valid UTF-8");
        }
    }

    private static string Latin1(ReadOnlySpan<byte> bytes) => Encoding.Latin1.GetString(bytes);

    private string Line(ReadOnlySpan<byte> data, ref int pos, int at)
    {
        var rest = data[pos..];
        var end = rest[..Math.Min(rest.Length, MaxGlobalNameBytes + 1)].IndexOf((byte)'\n');
        if (end < 0)
        {
            throw Error(at, rest.Length <= MaxGlobalNameBytes
                ? "a global name runs past the end of the pickle (the file is truncated)"
                : $"a global name that does not end within {MaxGlobalNameBytes} bytes");
        }

        pos += end + 1;
        return Encoding.UTF8.GetString(rest[..end]);
    }

    private object? Pop(List<object?> stack, Stack<int> marks, int at, byte op)
    {
        var floor = marks.Count > 0 ? marks.Peek() : 0;
        if (stack.Count <= floor)
        {
            throw Error(at, $"opcode 0x{op:x2} finds no value on the stack");
        }

        var value = stack[^1];
        stack.RemoveAt(stack.Count - 1);
        return value;
    }

    private object? Peek(List<object?> stack, Stack<int> marks, int at, byte op)
    {
        if (stack.Count <= (marks.Count > 0 ? marks.Peek() : 0))
        {
            throw Error(at, $"opcode 0x{op:x2} finds no value on the stack");
        }

        return stack[^1];
    }

    private object?[] PopMark(List<object?> stack, Stack<int> marks, int at)
    {
        if (marks.Count == 0)
        {
            throw Error(at, "an opcode that needs a MARK finds none");
        }

        var mark = marks.Pop();
        var items = stack.GetRange(mark, stack.Count - mark).ToArray();
        stack.RemoveRange(mark, stack.Count - mark);
        return items;
    }

    private T Target<T>(List<object?> stack, Stack<int> marks, int at, string opcode)
    {
        if (stack.Count <= (marks.Count > 0 ? marks.Peek() : 0) || stack[^1] is not T target)
        {
            throw Error(at, $"{opcode} without a {(typeof(T) == typeof(PickleDict) ? "dict" : "list")} to add to");
        }

        return target;
    }

    /// <summary>How deeply a value nests containers (0 for a scalar).</summary>
    private static int Depth(object? value) => value is IPickleContainer container ? container.Depth : 0;

    private PickleTuple Tuple(object?[] items, int at)
    {
        var tuple = new PickleTuple(items) { Depth = 1 + items.Select(Depth).DefaultIfEmpty(0).Max() };
        return tuple.Depth <= MaxNesting ? tuple : throw Error(at, $"values nested more than {MaxNesting} deep");
    }

    /// <summary>
    /// Adds items (dict: key, value, ...) to a list or dict. Its depth only grows, so a container made to hold itself
    /// reaches the limit after a bounded number of steps.
    /// </summary>
    private void Grow(IPickleContainer container, object?[] items, int at)
    {
        container.Depth = Math.Max(container.Depth, 1 + items.Select(Depth).DefaultIfEmpty(0).Max());
        if (container.Depth > MaxNesting)
        {
            throw Error(at, $"values nested more than {MaxNesting} deep");
        }

        if (container is PickleList list)
        {
            list.AddRange(items);
        }
        else
        {
            var dict = (PickleDict)container;
            for (var i = 0; i + 1 < items.Length; i += 2)
            {
                dict.Add(items[i], items[i + 1]);
            }
        }
    }

    private object? Recall(Dictionary<long, object?> memo, long index, int at) =>
        memo.TryGetValue(index, out var value) ? value : throw Error(at, $"memo entry {index} is read before it is written");

    private PickleGlobal Global(string module, string name, int at)
    {
        var fullName = $"{module}.{name}";
        if (AllowedGlobals.TryGetValue(fullName, out var allowed))
        {
            return allowed;
        }

        throw UnsupportedTypes.Contains(fullName)
            ? Error(at, $"tensors of type {fullName} are not supported (float64/32/16, bfloat16, integer and bool tensors are)")
            : Error(at, $"the global {Sanitize(module)}.{Sanitize(name)} is refused: a state dict needs only tensors, storages and OrderedDict, so nothing else is looked up or called");
    }

    private object? Call(object? callable, object? arguments, int at, string opcode)
    {
        if (callable is not PickleGlobal global || !global.IsCallable)
        {
            throw Error(at, $"{opcode} calls {Describe(callable)}, which is refused");
        }

        if (arguments is not PickleTuple { Items: var args })
        {
            throw Error(at, $"{opcode} of {global.Name} without an argument tuple");
        }

        switch (global.Kind)
        {
            case GlobalKind.OrderedDict:
                var dict = new PickleDict();
                if (args.Length == 1 && args[0] is PickleList pairs)
                {
                    foreach (var pair in pairs)
                    {
                        if (pair is not PickleTuple { Items: [var k, var v] })
                        {
                            throw Error(at, "OrderedDict built from something other than pairs");
                        }

                        dict.Add(k, v);
                    }

                    dict.Depth = pairs.Depth;
                }
                else if (args.Length != 0)
                {
                    throw Error(at, "OrderedDict with unexpected arguments");
                }

                return dict;
            case GlobalKind.Size:
                return args is [PickleTuple dims] ? dims : throw Error(at, "torch.Size without a tuple of sizes");
            case GlobalKind.RebuildTensorV1 when args.Length == 4:
                // _rebuild_tensor(storage, offset, size, stride)
                return Tensor(args[0], null, args[1], args[2], args[3], at);
            case GlobalKind.RebuildTensorV2 when args.Length is 6 or 7:
                // _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, backward_hooks[, metadata])
                return Tensor(args[0], null, args[1], args[2], args[3], at);
            case GlobalKind.RebuildTensorV1 or GlobalKind.RebuildTensorV2:
                throw Error(at, $"{global.Name} with {args.Length} arguments");
            case GlobalKind.RebuildTensorV3:
                // _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype[, metadata])
                if (args.Length is < 7 or > 8 || args[6] is not PickleGlobal { Kind: GlobalKind.DType } dtype)
                {
                    throw Error(at, $"{global.Name} without its dtype argument");
                }

                return Tensor(args[0], dtype.DType, args[1], args[2], args[3], at);
            case GlobalKind.RebuildParameter:
                // _rebuild_parameter(data, requires_grad, hooks), _rebuild_parameter_with_state(..., state)
                return args is [PickledTensor tensor, ..] && args.Length is 3 or 4 ? tensor : throw Error(at, $"{global.Name} of something other than a tensor");
            case GlobalKind.RebuildFromType:
                // _rebuild_from_type_v2(func, new_type, args, state): a tensor subclass; the plain tensor is what counts
                if (args is not [PickleGlobal { IsCallable: true, Kind: GlobalKind.RebuildTensorV1 or GlobalKind.RebuildTensorV2 or GlobalKind.RebuildTensorV3 or GlobalKind.RebuildParameter } inner, PickleGlobal { Kind: GlobalKind.TensorType }, PickleTuple innerArgs, _])
                {
                    throw Error(at, $"{global.Name} of something other than a tensor");
                }

                return Call(inner, innerArgs, at, opcode);
            default:
                throw Error(at, $"{opcode} calls {global.Name}, which is refused");
        }
    }

    private StorageRef Storage(object? persistentId, int at)
    {
        // ('storage', storage_type, key, location, numel) in the zip format; the legacy format adds view metadata.
        if (persistentId is PickleTuple { Items: ["module", ..] })
        {
            throw Error(at, "this file holds a whole pickled model (torch.save(model)), not a state dict: save model.state_dict() instead");
        }

        if (persistentId is not PickleTuple { Items: ["storage", var type, string key, _, long numel, .. var rest] } || rest.Length > 1)
        {
            throw Error(at, $"a persistent id that is not ('storage', type, key, location, size): {Describe(persistentId)}");
        }

        if (type is not PickleGlobal { Kind: GlobalKind.Storage } storageType)
        {
            throw Error(at, $"storage {Sanitize(key)} has type {Describe(type)}, not a storage type");
        }

        if (numel < 0)
        {
            throw Error(at, $"storage {Sanitize(key)} has a negative size {numel}");
        }

        var storage = new StorageRef(key, storageType.DType, numel, 0, numel);
        if (rest is [PickleTuple { Items: [string, long offset, long count] }])
        {
            // A view of a root storage (legacy files from PyTorch before 0.4): elements [offset, offset + count).
            if (offset < 0 || count < 0 || offset > numel || count > numel - offset)
            {
                throw Error(at, $"storage view [{offset}, +{count}) lies outside storage {Sanitize(key)} of {numel} elements");
            }

            storage = storage with { Offset = offset, Count = count };
        }
        else if (rest is [not null])
        {
            throw Error(at, $"storage {Sanitize(key)} has view metadata {Describe(rest[0])}");
        }

        _storages.Add(storage);
        return storage;
    }

    private PickledTensor Tensor(object? storageArg, TensorDType? dtype, object? offsetArg, object? sizeArg, object? strideArg, int at)
    {
        if (storageArg is not StorageRef storage)
        {
            throw Error(at, $"a tensor over {Describe(storageArg)} instead of a storage");
        }

        var size = Dimensions(sizeArg, "size", at);
        var stride = Dimensions(strideArg, "stride", at);
        if (offsetArg is not long offset || offset < 0)
        {
            throw Error(at, $"a tensor with storage offset {Describe(offsetArg)}");
        }

        if (size.Length != stride.Length)
        {
            throw Error(at, $"a tensor with {size.Length} sizes but {stride.Length} strides");
        }

        var type = dtype ?? storage.DType;
        try
        {
            // The elements the tensor touches, [offset, last], must lie inside the storage (counted in bytes, as a
            // dtype given to _rebuild_tensor_v3 may differ from the storage's).
            var count = size.Contains(0) ? 0L : 1L;
            var last = offset;
            for (var i = 0; i < size.Length && count > 0; i++)
            {
                count = checked(count * size[i]);
                last = checked(last + ((size[i] - 1) * stride[i]));
            }

            var width = TensorConversion.SizeOf(type);
            var storageBytes = checked(storage.Count * TensorConversion.SizeOf(storage.DType));
            if (count > 0 && checked((last + 1) * width) > storageBytes)
            {
                throw Error(at, $"a tensor of size ({string.Join(", ", size)}) at offset {offset} reaches past storage {Sanitize(storage.Key)} of {storage.Count} elements");
            }

            _ = checked(count * width);
        }
        catch (OverflowException)
        {
            throw Error(at, $"a tensor of size ({string.Join(", ", size)}) and stride ({string.Join(", ", stride)}) is too large");
        }

        return new PickledTensor(storage, type, offset, size, stride);
    }

    private long[] Dimensions(object? value, string what, int at)
    {
        if (value is not PickleTuple { Items: var items } || items.Length > MaxTensorRank)
        {
            throw Error(at, $"a tensor {what} that is not a tuple of at most {MaxTensorRank} integers: {Describe(value)}");
        }

        var dims = new long[items.Length];
        for (var i = 0; i < items.Length; i++)
        {
            dims[i] = items[i] is long d && d >= 0 ? d : throw Error(at, $"a tensor {what} with the entry {Describe(items[i])}");
        }

        return dims;
    }

    /// <summary>A short, log-safe description of a value (never recursive, so a deep structure cannot overflow).</summary>
    internal static string Describe(object? value) => value switch
    {
        null => "None",
        string s => $"'{Sanitize(s)}'",
        long or double or bool or BigInteger => Sanitize(value.ToString()!),
        PickleGlobal g => g.Name,
        PickleTuple t => $"a tuple of {t.Items.Length}",
        PickleList l => $"a list of {l.Count}",
        PickleDict d => $"a dict of {d.Items.Count}",
        byte[] b => $"{b.Length} bytes",
        StorageRef s => $"storage {Sanitize(s.Key)}",
        PickledTensor => "a tensor",
        _ => value.GetType().Name,
    };

    /// <summary>Keeps names from a hostile file short and printable in messages and logs.</summary>
    internal static string Sanitize(string text)
    {
        var builder = new StringBuilder();
        foreach (var c in text.Length > 80 ? text[..80] : text)
        {
            builder.Append(char.IsControl(c) || char.IsSurrogate(c) ? '?' : c);
        }

        return text.Length > 80 ? builder.Append('…').ToString() : builder.ToString();
    }

    private static Dictionary<string, PickleGlobal> BuildAllowList()
    {
        var globals = new List<PickleGlobal>
        {
            new("collections.OrderedDict", GlobalKind.OrderedDict),
            new("torch.Size", GlobalKind.Size),
            new("torch._utils._rebuild_tensor", GlobalKind.RebuildTensorV1),
            new("torch._utils._rebuild_tensor_v2", GlobalKind.RebuildTensorV2),
            new("torch._utils._rebuild_tensor_v3", GlobalKind.RebuildTensorV3),
            new("torch._utils._rebuild_parameter", GlobalKind.RebuildParameter),
            new("torch._utils._rebuild_parameter_with_state", GlobalKind.RebuildParameter),
            new("torch._tensor._rebuild_from_type_v2", GlobalKind.RebuildFromType),
            new("torch.Tensor", GlobalKind.TensorType),
            new("torch.nn.parameter.Parameter", GlobalKind.TensorType),
            new("torch.UntypedStorage", GlobalKind.Storage, TensorDType.U8),
            new("torch.storage.UntypedStorage", GlobalKind.Storage, TensorDType.U8),
        };
        (string Storage, TensorDType DType)[] storages =
        [
            ("DoubleStorage", TensorDType.F64), ("FloatStorage", TensorDType.F32), ("HalfStorage", TensorDType.F16),
            ("BFloat16Storage", TensorDType.BF16), ("LongStorage", TensorDType.I64), ("IntStorage", TensorDType.I32),
            ("ShortStorage", TensorDType.I16), ("CharStorage", TensorDType.I8), ("ByteStorage", TensorDType.U8),
            ("BoolStorage", TensorDType.Bool),
        ];
        globals.AddRange(storages.Select(s => new PickleGlobal($"torch.{s.Storage}", GlobalKind.Storage, s.DType)));
        (string DType, TensorDType Type)[] dtypes =
        [
            ("float64", TensorDType.F64), ("double", TensorDType.F64), ("float32", TensorDType.F32), ("float", TensorDType.F32),
            ("float16", TensorDType.F16), ("half", TensorDType.F16), ("bfloat16", TensorDType.BF16),
            ("int64", TensorDType.I64), ("long", TensorDType.I64), ("int32", TensorDType.I32), ("int", TensorDType.I32),
            ("int16", TensorDType.I16), ("short", TensorDType.I16), ("int8", TensorDType.I8), ("uint8", TensorDType.U8),
            ("bool", TensorDType.Bool),
        ];
        globals.AddRange(dtypes.Select(d => new PickleGlobal($"torch.{d.DType}", GlobalKind.DType, d.Type)));
        return globals.ToDictionary(g => g.Name, StringComparer.Ordinal);
    }
}

internal enum GlobalKind
{
    OrderedDict,
    Size,
    RebuildTensorV1,
    RebuildTensorV2,
    RebuildTensorV3,
    RebuildParameter,
    RebuildFromType,
    TensorType,
    Storage,
    DType,
}

/// <summary>An allowed global: a name bound to what this reader does with it (nothing is ever imported).</summary>
internal sealed record PickleGlobal(string Name, GlobalKind Kind, TensorDType DType = TensorDType.F32)
{
    public bool IsCallable => Kind is not (GlobalKind.Storage or GlobalKind.DType or GlobalKind.TensorType);
}

/// <summary>A pickled tuple, list or dict, with a bound on how deeply it nests others.</summary>
internal interface IPickleContainer
{
    int Depth { get; set; }
}

internal sealed record PickleTuple(object?[] Items) : IPickleContainer
{
    public int Depth { get; set; } = 1;
}

internal sealed class PickleList : List<object?>, IPickleContainer
{
    public int Depth { get; set; } = 1;
}

/// <summary>A pickled dict in insertion order (later duplicates win on lookup, as in Python).</summary>
internal sealed class PickleDict : IPickleContainer
{
    public List<KeyValuePair<object?, object?>> Items { get; } = [];

    public int Depth { get; set; } = 1;

    /// <summary>What BUILD set on the dict (OrderedDict's <c>_metadata</c>); kept, never interpreted.</summary>
    public object? State { get; set; }

    public void Add(object? key, object? value) => Items.Add(new(key, value));
}

/// <summary>
/// A storage a pickle refers to: its key (a zip entry or a legacy storage), element type, size in elements, and
/// the element range <c>[Offset, Offset + Count)</c> a tensor may use (a legacy view; the whole storage otherwise).
/// </summary>
internal sealed record StorageRef(string Key, TensorDType DType, long RootCount, long Offset, long Count);

/// <summary>A tensor as <c>_rebuild_tensor_v2</c> describes it: a strided view of a storage.</summary>
internal sealed record PickledTensor(StorageRef Storage, TensorDType DType, long Offset, long[] Size, long[] Stride);
