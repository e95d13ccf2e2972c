using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Inference.Checkpoints;

/// <summary>Emits pickle opcodes one by one, so that tests can write both torch.save's pickles and hostile ones.</summary>
public sealed class PickleBuilder
{
    private readonly MemoryStream _bytes = new();

    public PickleBuilder Op(byte opcode)
    {
        _bytes.WriteByte(opcode);
        return this;
    }

    public PickleBuilder Raw(params byte[] bytes)
    {
        _bytes.Write(bytes);
        return this;
    }

    public PickleBuilder Proto(byte protocol = 2) => Op(0x80).Raw(protocol);

    public PickleBuilder Mark() => Op((byte)'(');

    public PickleBuilder Stop() => Op((byte)'.');

    public PickleBuilder None() => Op((byte)'N');

    public PickleBuilder Bool(bool value) => Op(value ? (byte)0x88 : (byte)0x89);

    public PickleBuilder EmptyTuple() => Op((byte)')');

    public PickleBuilder EmptyDict() => Op((byte)'}');

    public PickleBuilder EmptyList() => Op((byte)']');

    /// <summary>TUPLE from the last MARK.</summary>
    public PickleBuilder Tuple() => Op((byte)'t');

    public PickleBuilder Tuple1() => Op(0x85);

    public PickleBuilder Tuple2() => Op(0x86);

    public PickleBuilder Tuple3() => Op(0x87);

    public PickleBuilder SetItem() => Op((byte)'s');

    public PickleBuilder SetItems() => Op((byte)'u');

    public PickleBuilder Append() => Op((byte)'a');

    public PickleBuilder Reduce() => Op((byte)'R');

    public PickleBuilder Build() => Op((byte)'b');

    public PickleBuilder BinPersId() => Op((byte)'Q');

    public PickleBuilder Put(byte index) => Op((byte)'q').Raw(index);

    public PickleBuilder Get(byte index) => Op((byte)'h').Raw(index);

    public PickleBuilder Global(string module, string name) => Op((byte)'c').Raw(Encoding.ASCII.GetBytes($"{module}\n{name}\n"));

    public PickleBuilder String(string value)
    {
        var utf8 = Encoding.UTF8.GetBytes(value);
        return Op((byte)'X').UInt32((uint)utf8.Length).Raw(utf8);
    }

    public PickleBuilder Int(long value)
    {
        if (value is >= 0 and < 256)
        {
            return Op((byte)'K').Raw((byte)value);
        }

        if (value is >= int.MinValue and <= int.MaxValue)
        {
            return Op((byte)'J').UInt32((uint)(int)value);
        }

        var bytes = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(bytes, value);
        return Op(0x8a).Raw(8).Raw(bytes);
    }

    public PickleBuilder Float(double value)
    {
        var bytes = new byte[8];
        BinaryPrimitives.WriteDoubleBigEndian(bytes, value);
        return Op((byte)'G').Raw(bytes);
    }

    public PickleBuilder UInt32(uint value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, value);
        return Raw(bytes);
    }

    /// <summary>A tuple of integers (a tensor's size or stride).</summary>
    public PickleBuilder IntTuple(IEnumerable<long> values)
    {
        Mark();
        foreach (var v in values)
        {
            Int(v);
        }

        return Tuple();
    }

    /// <summary><c>collections.OrderedDict()</c>, as torch.save writes backward hooks and state dicts.</summary>
    public PickleBuilder OrderedDict() => Global("collections", "OrderedDict").EmptyTuple().Reduce();

    public byte[] ToArray() => _bytes.ToArray();
}

/// <summary>A tensor as a test writes it into a PyTorch file: a (possibly strided) view of a storage.</summary>
public sealed record TorchTensor(string Name, string StorageType, string Key, long Numel, long Offset, long[] Size, long[] Stride)
{
    /// <summary>Wraps the tensor in <c>torch._utils._rebuild_parameter</c> as an <c>nn.Parameter</c> pickles.</summary>
    public bool Parameter { get; init; }

    /// <summary>Rebuilds it with <c>_rebuild_tensor_v3</c> over an untyped storage and this dtype (torch 2).</summary>
    public string? V3DType { get; init; }

    public static TorchTensor Contiguous(string name, string storageType, string key, long[] shape)
    {
        var stride = new long[shape.Length];
        var step = 1L;
        for (var d = shape.Length - 1; d >= 0; d--)
        {
            stride[d] = step;
            step *= shape[d];
        }

        return new TorchTensor(name, storageType, key, step, 0, shape, stride);
    }
}

/// <summary>Writes PyTorch checkpoints the way torch.save lays them out (zip since 1.6, and the legacy stream).</summary>
public static class TorchFiles
{
    /// <summary>The pickle of an OrderedDict state dict, with persistent ids as torch.save writes them.</summary>
    public static byte[] StateDictPickle(IEnumerable<TorchTensor> tensors, bool legacy = false, Action<PickleBuilder>? extraItems = null)
    {
        var b = new PickleBuilder().Proto(2).OrderedDict().Mark();
        foreach (var t in tensors)
        {
            b.String(t.Name);
            WriteTensor(b, t, legacy);
        }

        extraItems?.Invoke(b);
        return b.SetItems().Stop().ToArray();
    }

    public static void WriteTensor(PickleBuilder b, TorchTensor t, bool legacy)
    {
        if (t.Parameter)
        {
            b.Global("torch._utils", "_rebuild_parameter").Mark();
        }

        b.Global("torch._utils", t.V3DType is null ? "_rebuild_tensor_v2" : "_rebuild_tensor_v3").Mark();
        b.Mark().String("storage");
        if (t.V3DType is null)
        {
            b.Global("torch", t.StorageType);
        }
        else
        {
            b.Global("torch.storage", "UntypedStorage");
        }

        b.String(t.Key).String("cpu").Int(t.Numel);
        if (legacy)
        {
            b.None();
        }

        b.Tuple().BinPersId().Int(t.Offset).IntTuple(t.Size).IntTuple(t.Stride).Bool(false).OrderedDict();
        if (t.V3DType is not null)
        {
            b.Global("torch", t.V3DType);
        }

        b.Tuple().Reduce();
        if (t.Parameter)
        {
            b.Bool(true).OrderedDict().Tuple().Reduce();
        }
    }

    /// <summary>A torch.save zip: <c>stem/data.pkl</c> (left out when empty), <c>stem/data/KEY</c> per storage, <c>stem/version</c>.</summary>
    public static void WriteZip(string path, byte[] pickle, IReadOnlyDictionary<string, byte[]> storages, string stem = "archive", bool compress = false, IReadOnlyDictionary<string, byte[]>? extraEntries = null)
    {
        using var stream = File.Create(path);
        using var zip = new ZipArchive(stream, ZipArchiveMode.Create);
        var level = compress ? CompressionLevel.Optimal : CompressionLevel.NoCompression;
        void Add(string name, byte[] data)
        {
            using var entry = zip.CreateEntry(name, level).Open();
            entry.Write(data);
        }

        if (pickle.Length > 0)
        {
            Add($"{stem}/data.pkl", pickle);
        }

        foreach (var (key, data) in storages)
        {
            Add($"{stem}/data/{key}", data);
        }

        Add($"{stem}/version", "3\n"u8.ToArray());
        foreach (var (name, data) in extraEntries ?? new Dictionary<string, byte[]>())
        {
            Add($"{stem}/{name}", data);
        }
    }

    /// <summary>The pickles that open every legacy file: magic number, protocol version 1001, sys info.</summary>
    public static byte[] LegacyPreamble()
    {
        byte[] magic = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, (byte)'.'];
        var version = new PickleBuilder().Proto(2).Int(1001).Stop().ToArray();
        var sysInfo = new PickleBuilder().Proto(2).EmptyDict().Mark()
            .String("protocol_version").Int(1001).String("little_endian").Bool(true)
            .String("type_sizes").EmptyDict().Mark().String("short").Int(2).String("int").Int(4).String("long").Int(4).SetItems()
            .SetItems().Stop().ToArray();
        return [.. magic, .. version, .. sysInfo];
    }

    /// <summary>
    /// A legacy (pre-1.6) file: the preamble, the state dict pickle, the list of storage keys, then per storage a u64
    /// LE element count and the raw data.
    /// </summary>
    public static void WriteLegacy(string path, byte[] statePickle, IReadOnlyList<(string Key, long Count, byte[] Data)> storages)
    {
        var keys = new PickleBuilder().Proto(2).EmptyList().Mark();
        foreach (var s in storages)
        {
            keys.String(s.Key);
        }

        keys.Op((byte)'e').Stop();
        using var stream = File.Create(path);
        stream.Write(LegacyPreamble());
        stream.Write(statePickle);
        stream.Write(keys.ToArray());
        foreach (var (_, count, data) in storages)
        {
            var length = new byte[8];
            BinaryPrimitives.WriteInt64LittleEndian(length, count);
            stream.Write(length);
            stream.Write(data);
        }
    }
}

/// <summary>Writes safetensors files: u64 LE header length, JSON header padded with spaces to 8 bytes, data.</summary>
public static class SafetensorsFiles
{
    public sealed record Tensor(string Name, string DType, long[] Shape, byte[] Data);

    public static void Write(string path, IEnumerable<Tensor> tensors)
    {
        var header = new Dictionary<string, object> { ["__metadata__"] = new Dictionary<string, string> { ["format"] = "pt" } };
        var data = new MemoryStream();
        foreach (var t in tensors)
        {
            header[t.Name] = new { dtype = t.DType, shape = t.Shape, data_offsets = new[] { data.Length, data.Length + t.Data.Length } };
            data.Write(t.Data);
        }

        WriteRaw(path, JsonSerializer.Serialize(header), data.ToArray());
    }

    /// <summary>A file with the header text given as is (for malformed headers).</summary>
    public static void WriteRaw(string path, string headerJson, byte[] data, long? claimedHeaderLength = null)
    {
        var json = Encoding.UTF8.GetBytes(headerJson);
        var padded = json.Concat(Enumerable.Repeat((byte)' ', (8 - (json.Length % 8)) % 8)).ToArray();
        var length = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(length, claimedHeaderLength ?? padded.Length);
        File.WriteAllBytes(path, [.. length, .. padded, .. data]);
    }
}

/// <summary>The six architecture fixtures of <c>../shared/oracles/architectures</c>.</summary>
public static class ArchitectureFixtures
{
    public static readonly string[] Names = ["bert", "roberta", "distilbert", "deberta", "deberta-v2", "mpnet"];

    public static string Folder(string architecture) => Path.Combine(Paths.Shared, "oracles", "architectures", architecture);

    public static string File(string architecture, string file) => Path.Combine(Folder(architecture), file);
}

/// <summary>A temporary folder, deleted on dispose.</summary>
public sealed class TempFolder : IDisposable
{
    public TempFolder() => Directory.CreateDirectory(Path);

    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "orleansgpu-ckpt-" + Guid.NewGuid().ToString("N"));

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
