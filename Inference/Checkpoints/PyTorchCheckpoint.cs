using System.Numerics;
using System.Text;

namespace OrleansGpu.Inference.Checkpoints;

/// <summary>
/// A <c>pytorch_model.bin</c>, memory-mapped: the zip format of <c>torch.save</c> since PyTorch 1.6
/// (<c>&lt;stem&gt;/data.pkl</c> plus one stored entry per storage) or the legacy stream of pickles that came before
/// it. The state dict's pickle is interpreted by <see cref="StateDictUnpickler"/>, which never executes anything;
/// tensor data is read in place from the mapping, so opening a multi-gigabyte checkpoint reads only its directory and
/// pickle, and reading costs no more memory than the tensors asked of it. Reads may run concurrently. Names are as stored (task prefixes, <c>gamma</c>/<c>beta</c>): see
/// <see cref="BaseModelCheckpoint"/> for the base model's names.
/// </summary>
public sealed class PyTorchCheckpoint : ICheckpoint
{
    private const int LegacyProtocolVersion = 1001;

    // The first pickle of a legacy file: LONG1 of torch.serialization's MAGIC_NUMBER 0x1950a86a20f9469cfc6c.
    private static readonly BigInteger LegacyMagic = BigInteger.Parse("1950a86a20f9469cfc6c", System.Globalization.NumberStyles.HexNumber);
    private static readonly byte[] LegacyMagicPickle = [0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

    private readonly MappedFile _file;
    private readonly ZipDirectory? _zip;
    private readonly Dictionary<string, Placed> _tensors;

    private PyTorchCheckpoint(MappedFile file, ZipDirectory? zip, Dictionary<string, Placed> tensors)
    {
        _file = file;
        _zip = zip;
        _tensors = tensors;
    }

    /// <summary>True for the zip format, false for the legacy (pre-1.6) stream of pickles.</summary>
    public bool IsZip => _zip is not null;

    public IReadOnlyCollection<string> Names => _tensors.Keys;

    /// <summary>Whether a file starts as <c>torch.save</c>'s legacy format does: a pickle of its magic number.</summary>
    public static bool IsLegacy(ReadOnlySpan<byte> start)
    {
        if (start.Length < 2 || start[0] != 0x80 || start[1] > 5)
        {
            return false;
        }

        // PROTO, then (protocol 4 and later) a FRAME opcode with its 8-byte length, then LONG1 of the magic number.
        var rest = start[2..];
        return (rest.Length > 9 && rest[0] == 0x95 ? rest[9..] : rest).StartsWith(LegacyMagicPickle);
    }

    /// <summary>Opens either PyTorch format (told apart by the file's first bytes).</summary>
    public static PyTorchCheckpoint Open(string path)
    {
        var file = MappedFile.Open(path);
        try
        {
            var start = file.Span(0, Math.Min(file.Length, 32));
            if (ZipDirectory.LooksLikeZip(start))
            {
                return OpenZip(file);
            }

            if (IsLegacy(start))
            {
                return OpenLegacy(file);
            }

            throw new CheckpointException($"{file.Name} is not a PyTorch checkpoint: it is neither a zip (torch.save since 1.6) nor the legacy format.");
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    public bool Contains(string name) => _tensors.ContainsKey(name);

    public TensorInfo Info(string name) => Get(name).Info;

    public float[] ReadFloat32(string name)
    {
        var tensor = Get(name);
        if (!tensor.Info.IsFloatingPoint)
        {
            throw new CheckpointException($"{tensor.Info} in {_file.Name} is not a floating-point tensor.");
        }

        var result = new float[tensor.Info.ElementCount];
        var bytes = TensorBytes(tensor);
        TensorConversion.ToFloat32(tensor.Info.DType, tensor.IsContiguous ? bytes : Gather(tensor, bytes), result);
        return result;
    }

    public byte[] ReadBytes(string name)
    {
        var tensor = Get(name);
        var bytes = TensorBytes(tensor);
        return tensor.IsContiguous ? bytes.ToArray() : Gather(tensor, bytes);
    }

    public bool TryGetFloat32Memory(string name, out ReadOnlyMemory<float> data)
    {
        var tensor = Get(name);
        if (tensor is { Info.DType: TensorDType.F32, IsContiguous: true, Entry: null or { Method: 0 } }
            && _file.Float32Memory(tensor.DataStart, (int)tensor.Info.ElementCount) is { } memory)
        {
            data = memory;
            return true;
        }

        data = default;
        return false;
    }

    public void Dispose() => _file.Dispose();

    private Placed Get(string name) =>
        _tensors.TryGetValue(name, out var tensor)
            ? tensor
            : throw new CheckpointException($"{_file.Name} has no tensor named {name}.");

    /// <summary>The bytes from the tensor's first element to its last (all of it when contiguous).</summary>
    private ReadOnlySpan<byte> TensorBytes(Placed tensor)
    {
        if (tensor.Entry is { Method: not 0 } entry)
        {
            return _zip!.Read(entry).Slice((int)tensor.ByteOffset, (int)tensor.Extent);
        }

        return _file.Span(tensor.DataStart, tensor.Extent);
    }

    /// <summary>Copies a strided view's elements (from its first element on) into row-major order.</summary>
    private static byte[] Gather(Placed tensor, ReadOnlySpan<byte> view)
    {
        var width = TensorConversion.SizeOf(tensor.Info.DType);
        var size = tensor.Pickled.Size;
        var stride = tensor.Pickled.Stride;
        var result = new byte[tensor.ByteLength];
        var index = new long[size.Length];
        var source = 0L;
        for (var i = 0; i < result.Length; i += width)
        {
            view.Slice((int)(source * width), width).CopyTo(result.AsSpan(i, width));
            for (var d = size.Length - 1; d >= 0; d--)
            {
                source += stride[d];
                if (++index[d] < size[d])
                {
                    break;
                }

                source -= stride[d] * size[d];
                index[d] = 0;
            }
        }

        return result;
    }

    private static PyTorchCheckpoint OpenZip(MappedFile file)
    {
        var zip = ZipDirectory.Read(file);
        var first = zip.Entries.Count > 0 ? zip.Entries[0].Name : "";
        var slash = first.IndexOf('/');
        if (slash <= 0)
        {
            throw new CheckpointException($"{file.Name} is a zip but not a PyTorch checkpoint: its entries are not under one folder.");
        }

        // The folder is whatever the file was called when saved ("archive" in many hub files).
        var stem = first[..slash];
        if (!zip.TryGet($"{stem}/data.pkl", out var pickleEntry))
        {
            var what = zip.TryGet($"{stem}/constants.pkl", out _)
                ? "a TorchScript archive (torch.jit.save), not a state dict"
                : $"a zip without {StateDictUnpickler.Sanitize(stem)}/data.pkl, not a PyTorch checkpoint";
            throw new CheckpointException($"{file.Name} is {what}.");
        }

        if (zip.TryGet($"{stem}/byteorder", out var byteOrder)
            && Encoding.ASCII.GetString(zip.Read(byteOrder)).Trim() is var order and not "little")
        {
            throw new CheckpointException($"{file.Name} was saved {StateDictUnpickler.Sanitize(order)}-endian; only little-endian checkpoints are read.");
        }

        var source = $"{file.Name} ({StateDictUnpickler.Sanitize(stem)}/data.pkl)";
        var unpickler = new StateDictUnpickler(source);
        var root = unpickler.Load(zip.Read(pickleEntry), out _);
        var tensors = new Dictionary<string, Placed>(StringComparer.Ordinal);
        foreach (var (name, pickled) in StateDict(root, source))
        {
            var key = pickled.Storage.Key;
            if (!zip.TryGet($"{stem}/data/{key}", out var entry))
            {
                throw new CheckpointException($"{source}: tensor {name} refers to storage {StateDictUnpickler.Sanitize(key)}, which is not in the file.");
            }

            var storageLength = StorageLength(pickled.Storage);
            if (entry.Size < storageLength)
            {
                throw new CheckpointException($"{source}: storage {StateDictUnpickler.Sanitize(key)} claims {pickled.Storage.Count} elements ({storageLength} bytes) but its entry holds {entry.Size} bytes.");
            }

            tensors[name] = Place(name, pickled, entry.DataOffset, storageLength, entry);
        }

        return new PyTorchCheckpoint(file, zip, tensors);
    }

    private static PyTorchCheckpoint OpenLegacy(MappedFile file)
    {
        // magic number, protocol version, sys info, the state dict, the storage keys; then per key a u64 LE element
        // count and the raw data.
        var source = $"{file.Name} (legacy format)";
        var unpickler = new StateDictUnpickler(source);
        var data = file.From(0);
        var pos = 0;
        if (Next(unpickler, data, ref pos) is not BigInteger magic || magic != LegacyMagic)
        {
            throw new CheckpointException($"{source}: the magic number is wrong (corrupt file?).");
        }

        if (Next(unpickler, data, ref pos) is not long version || version != LegacyProtocolVersion)
        {
            throw new CheckpointException($"{source}: protocol version is not {LegacyProtocolVersion}.");
        }

        if (Next(unpickler, data, ref pos) is PickleDict sysInfo && sysInfo.Items.Any(i => i is { Key: "little_endian", Value: false }))
        {
            throw new CheckpointException($"{source} was saved on a big-endian machine; only little-endian checkpoints are read.");
        }

        var stateDict = StateDict(Next(unpickler, data, ref pos), source);
        if (Next(unpickler, data, ref pos) is not PickleList keys)
        {
            throw new CheckpointException($"{source}: the list of storage keys is missing.");
        }

        var storages = new Dictionary<string, StorageRef>(StringComparer.Ordinal);
        foreach (var storage in unpickler.Storages)
        {
            if (storages.TryGetValue(storage.Key, out var seen) && (seen.DType != storage.DType || seen.RootCount != storage.RootCount))
            {
                throw new CheckpointException($"{source}: storage {StateDictUnpickler.Sanitize(storage.Key)} is declared with two types or sizes.");
            }

            storages[storage.Key] = storage;
        }

        var starts = new Dictionary<string, long>(StringComparer.Ordinal);
        long at = pos;
        foreach (var item in keys)
        {
            if (item is not string key || !storages.TryGetValue(key, out var storage))
            {
                throw new CheckpointException($"{source}: the storage list names {StateDictUnpickler.Describe(item)}, which no tensor uses.");
            }

            var count = file.Holds(at, 8) ? file.ReadInt64(at) : throw new CheckpointException($"{source}: the file ends before storage {StateDictUnpickler.Sanitize(key)}.");
            if (count != storage.RootCount)
            {
                throw new CheckpointException($"{source}: storage {StateDictUnpickler.Sanitize(key)} holds {count} elements where {storage.RootCount} were declared.");
            }

            var width = TensorConversion.SizeOf(storage.DType);
            var length = count <= (file.Length / width) ? count * width : long.MaxValue;
            if (!file.Holds(at + 8, length) || !starts.TryAdd(key, at + 8))
            {
                throw new CheckpointException($"{source}: storage {StateDictUnpickler.Sanitize(key)} ({length} bytes at {at + 8}) is listed twice or lies outside the file.");
            }

            at += 8 + length;
        }

        var tensors = new Dictionary<string, Placed>(StringComparer.Ordinal);
        foreach (var (name, pickled) in stateDict)
        {
            if (!starts.TryGetValue(pickled.Storage.Key, out var start))
            {
                throw new CheckpointException($"{source}: tensor {name} refers to storage {StateDictUnpickler.Sanitize(pickled.Storage.Key)}, which the file does not hold.");
            }

            var storageStart = start + (pickled.Storage.Offset * TensorConversion.SizeOf(pickled.Storage.DType));
            tensors[name] = Place(name, pickled, storageStart, StorageLength(pickled.Storage), null);
        }

        return new PyTorchCheckpoint(file, null, tensors);
    }

    private static object? Next(StateDictUnpickler unpickler, ReadOnlySpan<byte> data, ref int pos)
    {
        var value = unpickler.Load(data[pos..], out var consumed);
        pos += consumed;
        return value;
    }

    /// <summary>The state dict's tensors: string keys with tensor values; other values (DeBERTa's <c>config</c>) are skipped.</summary>
    private static List<(string Name, PickledTensor Tensor)> StateDict(object? root, string source)
    {
        if (root is not PickleDict dict)
        {
            throw new CheckpointException($"{source} holds {StateDictUnpickler.Describe(root)}, not a state dict.");
        }

        var tensors = dict.Items.Where(i => i is { Key: string, Value: PickledTensor }).Select(i => ((string)i.Key!, (PickledTensor)i.Value!)).ToList();
        if (tensors.Count == 0)
        {
            var keys = string.Join(", ", dict.Items.Take(10).Select(i => StateDictUnpickler.Describe(i.Key)));
            throw new CheckpointException($"{source} holds no tensors at its top level (keys: {keys}); a training checkpoint must be saved as model.state_dict().");
        }

        return tensors;
    }

    private static long StorageLength(StorageRef storage) => storage.Count * TensorConversion.SizeOf(storage.DType);

    private static Placed Place(string name, PickledTensor pickled, long storageStart, long storageLength, ZipEntry? entry)
    {
        // The unpickler checked that [offset, last element] lies inside the storage without overflow.
        var info = new TensorInfo(name, pickled.DType, pickled.Size);
        var width = TensorConversion.SizeOf(pickled.DType);
        var byteLength = info.ElementCount * width;
        if (byteLength > int.MaxValue)
        {
            throw new CheckpointException($"{info} is over the 2 GiB a single tensor may have here.");
        }

        var last = 0L;
        for (var d = 0; d < pickled.Size.Length; d++)
        {
            last += (pickled.Size[d] - 1) * pickled.Stride[d];
        }

        var (byteOffset, extent) = byteLength == 0 ? (0L, 0L) : (pickled.Offset * width, (last + 1) * width);
        if (byteOffset > storageLength - extent)
        {
            throw new CheckpointException($"{info} reaches past its storage of {storageLength} bytes.");
        }

        return new Placed(info, pickled, storageStart + byteOffset, byteOffset, extent, entry, (int)byteLength, IsRowMajor(pickled.Size, pickled.Stride));
    }

    private static bool IsRowMajor(long[] size, long[] stride)
    {
        var expected = 1L;
        for (var d = size.Length - 1; d >= 0; d--)
        {
            if (size[d] != 1 && stride[d] != expected)
            {
                return false;
            }

            expected *= size[d];
        }

        return true;
    }

    /// <summary>A tensor placed in the file: its storage's bytes and the view's layout over them.</summary>
    /// <param name="DataStart">The file offset of the tensor's first element (for stored data).</param>
    /// <param name="ByteOffset">The first element's offset inside its storage.</param>
    /// <param name="Extent">Bytes from the first element to the end of the last one.</param>
    /// <param name="Entry">The zip entry, for data that must be inflated first.</param>
    private sealed record Placed(
        TensorInfo Info,
        PickledTensor Pickled,
        long DataStart,
        long ByteOffset,
        long Extent,
        ZipEntry? Entry,
        int ByteLength,
        bool IsContiguous);
}
