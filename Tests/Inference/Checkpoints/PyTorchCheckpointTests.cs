using System.Runtime.InteropServices;
using OrleansGpu.Inference.Checkpoints;

namespace OrleansGpu.Tests.Inference.Checkpoints;

/// <summary>What torch.save can write beyond the fixtures: views, offsets, shared storages, other element types.</summary>
public sealed class PyTorchCheckpointTests
{
    private static readonly float[] Six = [0, 1, 2, 3, 4, 5];

    public static TheoryData<bool> BothFormats() => [true, false];

    [Theory]
    [MemberData(nameof(BothFormats))]
    public void Strided_views_offsets_and_shared_storages_read_as_their_elements(bool zip)
    {
        // One storage of six floats [0..5] seen four ways, as x.t(), x[1:], x.view(2, 3) and x[:, 1] save.
        TorchTensor[] tensors =
        [
            new("whole", "FloatStorage", "0", 6, 0, [2, 3], [3, 1]),
            new("transposed", "FloatStorage", "0", 6, 0, [3, 2], [1, 3]),
            new("tail", "FloatStorage", "0", 6, 2, [4], [1]),
            new("column", "FloatStorage", "0", 6, 1, [2], [3]),
            new("scalar", "FloatStorage", "0", 6, 5, [], []),
            new("broadcast", "FloatStorage", "0", 6, 4, [3], [0]),
        ];

        using var folder = new TempFolder();
        using var checkpoint = Write(folder, zip, tensors, ("0", Bytes(Six)));

        Assert.Equal(Six, checkpoint.ReadFloat32("whole"));
        Assert.Equal([0f, 3, 1, 4, 2, 5], checkpoint.ReadFloat32("transposed"));
        Assert.Equal([2f, 3, 4, 5], checkpoint.ReadFloat32("tail"));
        Assert.Equal([1f, 4], checkpoint.ReadFloat32("column"));
        Assert.Equal([5f], checkpoint.ReadFloat32("scalar"));
        Assert.Equal([4f, 4, 4], checkpoint.ReadFloat32("broadcast"));
        Assert.Equal(Bytes([0f, 3, 1, 4, 2, 5]), checkpoint.ReadBytes("transposed"));
        Assert.Equal([3L, 2L], checkpoint.Info("transposed").Shape);

        // A view is never handed out as memory; contiguous data is when it happens to be 4-byte aligned.
        Assert.False(checkpoint.TryGetFloat32Memory("transposed", out _));
        if (checkpoint.TryGetFloat32Memory("tail", out var tail))
        {
            Assert.Equal([2f, 3, 4, 5], tail.ToArray());
        }
    }

    [Theory]
    [MemberData(nameof(BothFormats))]
    public void Half_bfloat16_double_and_integer_storages_are_read(bool zip)
    {
        ushort[] half = [0x3C00, 0xC000, 0x0001];       // 1, -2, 2^-24
        ushort[] bfloat = [0x3F80, 0xC000, 0x0001];     // 1, -2, 2^-133
        double[] doubles = [0.5, 1.0 / 3];
        long[] longs = [0, 1, long.MaxValue];
        int[] ints = [-1, 7];
        using var folder = new TempFolder();
        using var checkpoint = Write(
            folder,
            zip,
            [
                TorchTensor.Contiguous("half", "HalfStorage", "h", [3]),
                TorchTensor.Contiguous("bfloat", "BFloat16Storage", "b", [3]),
                TorchTensor.Contiguous("double", "DoubleStorage", "d", [2]),
                TorchTensor.Contiguous("long", "LongStorage", "l", [3]),
                TorchTensor.Contiguous("int", "IntStorage", "i", [2]),
            ],
            ("h", Bytes(half)),
            ("b", Bytes(bfloat)),
            ("d", Bytes(doubles)),
            ("l", Bytes(longs)),
            ("i", Bytes(ints)));

        Assert.Equal([1f, -2f, MathF.ScaleB(1, -24)], checkpoint.ReadFloat32("half"));
        Assert.Equal([1f, -2f, MathF.ScaleB(1, -133)], checkpoint.ReadFloat32("bfloat"));
        Assert.Equal([0.5f, (float)(1.0 / 3)], checkpoint.ReadFloat32("double"));
        Assert.Equal(TensorDType.I64, checkpoint.Info("long").DType);
        Assert.Equal(longs, MemoryMarshal.Cast<byte, long>(checkpoint.ReadBytes("long")).ToArray());
        Assert.Equal(ints, MemoryMarshal.Cast<byte, int>(checkpoint.ReadBytes("int")).ToArray());
        Assert.Throws<CheckpointException>(() => checkpoint.ReadFloat32("long"));
    }

    [Theory]
    [MemberData(nameof(BothFormats))]
    public void Parameters_and_non_tensor_values_are_read_as_torch_load_reads_them(bool zip)
    {
        // nn.Parameter pickles through _rebuild_parameter; DeBERTa MNLI checkpoints carry a `config` dict; state
        // dicts carry `_metadata` set on the OrderedDict by BUILD.
        var tensors = new[] { TorchTensor.Contiguous("encoder.weight", "FloatStorage", "0", [2, 3]) with { Parameter = true } };
        var pickle = TorchFiles.StateDictPickle(tensors, legacy: !zip, extraItems: b => b
            .String("config").EmptyDict().Mark().String("hidden_size").Int(1024).String("layer_norm_eps").Float(1e-7)
            .String("relative_attention").Bool(true).String("pos_att_type").EmptyList().Mark().String("c2p").String("p2c").Op((byte)'e')
            .String("id2label").EmptyDict().Mark().String("0").String("CONTRADICTION").SetItems().SetItems()
            .String("step").Int(-5));
        pickle = [.. pickle[..^1], .. new PickleBuilder().EmptyDict().String("_metadata").OrderedDict().SetItem().Build().Stop().ToArray()];

        using var folder = new TempFolder();
        using var checkpoint = WriteRaw(folder, zip, pickle, [("0", Bytes(Six), 4)]);

        Assert.Equal(["encoder.weight"], checkpoint.Names);
        Assert.Equal(Six, checkpoint.ReadFloat32("encoder.weight"));
    }

    [Fact]
    public void The_zip_folder_name_is_whatever_the_file_was_called()
    {
        using var folder = new TempFolder();
        var tensors = new[] { TorchTensor.Contiguous("w", "FloatStorage", "0", [6]) };
        foreach (var stem in new[] { "archive", "pytorch_model", "my model (final)" })
        {
            var path = folder.File($"{stem}.bin");
            TorchFiles.WriteZip(path, TorchFiles.StateDictPickle(tensors), new Dictionary<string, byte[]> { ["0"] = Bytes(Six) }, stem);
            using var checkpoint = PyTorchCheckpoint.Open(path);
            Assert.Equal(Six, checkpoint.ReadFloat32("w"));
        }
    }

    [Fact]
    public void A_recompressed_zip_is_still_read()
    {
        // torch.load reads deflated entries too; a tool that re-zipped the file must not break it.
        using var folder = new TempFolder();
        var values = Enumerable.Range(0, 4096).Select(i => (float)(i % 7)).ToArray();
        var tensors = new[] { TorchTensor.Contiguous("w", "FloatStorage", "0", [64, 64]), new TorchTensor("t", "FloatStorage", "0", 4096, 3, [64, 2], [1, 64]) };
        TorchFiles.WriteZip(folder.File("w.bin"), TorchFiles.StateDictPickle(tensors), new Dictionary<string, byte[]> { ["0"] = Bytes(values) }, compress: true);

        using var checkpoint = PyTorchCheckpoint.Open(folder.File("w.bin"));
        Assert.Equal(values, checkpoint.ReadFloat32("w"));
        Assert.Equal(Enumerable.Range(0, 64).SelectMany(r => new[] { values[3 + r], values[3 + r + 64] }), checkpoint.ReadFloat32("t"));
        Assert.False(checkpoint.TryGetFloat32Memory("w", out _));
    }

    [Fact]
    public void Torch_2_rebuild_tensor_v3_over_an_untyped_storage_is_read()
    {
        using var folder = new TempFolder();
        var tensor = new TorchTensor("w", "UntypedStorage", "0", 24, 1, [2, 2], [2, 1]) { V3DType = "float32" };
        using var checkpoint = Write(folder, zip: true, [tensor], ("0", Bytes(Six)));

        Assert.Equal([1f, 2, 3, 4], checkpoint.ReadFloat32("w"));
    }

    [Fact]
    public void Torch_Size_arguments_are_read_as_tuples()
    {
        var pickle = new PickleBuilder().Proto(2).OrderedDict().Mark().String("w")
            .Global("torch._utils", "_rebuild_tensor_v2").Mark()
            .Mark().String("storage").Global("torch", "FloatStorage").String("0").String("cpu").Int(6).Tuple().BinPersId()
            .Int(0).Global("torch", "Size").IntTuple([3, 2]).Tuple1().Reduce().IntTuple([2, 1]).Bool(false).OrderedDict().Tuple().Reduce()
            .SetItems().Stop().ToArray();

        using var folder = new TempFolder();
        using var checkpoint = WriteRaw(folder, zip: true, pickle, [("0", Bytes(Six), 4)]);
        Assert.Equal([3L, 2L], checkpoint.Info("w").Shape);
    }

    [Fact]
    public void A_legacy_storage_view_is_read_from_its_root_storage()
    {
        // PyTorch < 0.4 saved storage slices as ('storage', type, root_key, location, root_size, (view_key, offset, size)).
        var pickle = new PickleBuilder().Proto(2).OrderedDict().Mark().String("w")
            .Global("torch._utils", "_rebuild_tensor_v2").Mark()
            .Mark().String("storage").Global("torch", "FloatStorage").String("root").String("cpu").Int(6)
            .String("view").Int(2).Int(3).Tuple3().Tuple().BinPersId()
            .Int(1).IntTuple([2]).IntTuple([1]).Bool(false).OrderedDict().Tuple().Reduce()
            .SetItems().Stop().ToArray();

        using var folder = new TempFolder();
        using var checkpoint = WriteRaw(folder, zip: false, pickle, [("root", Bytes(Six), 4)]);
        Assert.Equal([3f, 4], checkpoint.ReadFloat32("w"));
    }

    [Fact]
    public void A_zip64_directory_is_read()
    {
        // Past 65535 entries the end record's fields saturate and the zip64 end record holds the real ones, as it
        // does for checkpoints over 4 GiB.
        const int count = 66_000;
        var tensors = Enumerable.Range(0, count).Select(i => TorchTensor.Contiguous($"t{i}", "FloatStorage", i.ToString(), [1])).ToArray();
        var storages = Enumerable.Range(0, count).ToDictionary(i => i.ToString(), i => Bytes(new[] { (float)i }));
        using var folder = new TempFolder();
        TorchFiles.WriteZip(folder.File("w.bin"), TorchFiles.StateDictPickle(tensors), storages);
        var endRecord = File.ReadAllBytes(folder.File("w.bin"))[^22..];
        Assert.Equal(0xFFFF, System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(endRecord.AsSpan(10)));

        using var checkpoint = PyTorchCheckpoint.Open(folder.File("w.bin"));
        Assert.Equal(count, checkpoint.Names.Count);
        Assert.Equal([65_999f], checkpoint.ReadFloat32("t65999"));
    }

    [Fact]
    public void A_legacy_file_saved_with_a_framed_pickle_protocol_is_read()
    {
        // pickle protocol 4 and later wrap opcodes in FRAMEs; torch.save(..., pickle_protocol=4) starts that way.
        byte[] magic = [0x80, 0x04, 0x95, 13, 0, 0, 0, 0, 0, 0, 0, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, (byte)'.'];
        using var folder = new TempFolder();
        var pickle = TorchFiles.StateDictPickle([TorchTensor.Contiguous("w", "FloatStorage", "0", [6])], legacy: true);
        TorchFiles.WriteLegacy(folder.File("w.bin"), pickle, [("0", 6, Bytes(Six))]);
        var bytes = File.ReadAllBytes(folder.File("w.bin"));
        File.WriteAllBytes(folder.File("w.bin"), [.. magic, .. bytes[15..]]);

        using var checkpoint = (PyTorchCheckpoint)ModelWeights.OpenFile(folder.File("w.bin"));
        Assert.False(checkpoint.IsZip);
        Assert.Equal(Six, checkpoint.ReadFloat32("w"));
    }

    [Fact]
    public void A_TorchScript_archive_is_named_as_such()
    {
        using var folder = new TempFolder();
        // torch.jit.save writes constants.pkl and code/ instead of a state dict's data.pkl.
        TorchFiles.WriteZip(folder.File("scripted.pt"), [], new Dictionary<string, byte[]>(), extraEntries: new Dictionary<string, byte[]> { ["constants.pkl"] = [0x80, 2, (byte)')', (byte)'.'] });

        var error = Assert.Throws<CheckpointException>(() => PyTorchCheckpoint.Open(folder.File("scripted.pt")));
        Assert.Contains("TorchScript", error.Message);
    }

    [Fact]
    public void A_training_checkpoint_with_nested_state_dicts_is_a_clear_error()
    {
        var pickle = new PickleBuilder().Proto(2).EmptyDict().Mark()
            .String("model").OrderedDict().String("epoch").Int(3).SetItems().Stop().ToArray();
        using var folder = new TempFolder();

        var error = Assert.Throws<CheckpointException>(() => WriteRaw(folder, zip: true, pickle, []));
        Assert.Contains("no tensors", error.Message);
        Assert.Contains("'model'", error.Message);
    }

    [Fact]
    public void A_big_endian_zip_is_refused()
    {
        using var folder = new TempFolder();
        TorchFiles.WriteZip(
            folder.File("w.bin"),
            TorchFiles.StateDictPickle([TorchTensor.Contiguous("w", "FloatStorage", "0", [6])]),
            new Dictionary<string, byte[]> { ["0"] = Bytes(Six) },
            extraEntries: new Dictionary<string, byte[]> { ["byteorder"] = "big"u8.ToArray() });

        var error = Assert.Throws<CheckpointException>(() => PyTorchCheckpoint.Open(folder.File("w.bin")));
        Assert.Contains("big-endian", error.Message);
    }

    [Fact]
    public void A_legacy_storage_whose_count_differs_from_its_declaration_is_refused()
    {
        using var folder = new TempFolder();
        var pickle = TorchFiles.StateDictPickle([TorchTensor.Contiguous("w", "FloatStorage", "0", [6])], legacy: true);
        TorchFiles.WriteLegacy(folder.File("w.bin"), pickle, [("0", 5, Bytes(Six))]);

        var error = Assert.Throws<CheckpointException>(() => PyTorchCheckpoint.Open(folder.File("w.bin")));
        Assert.Contains("holds 5 elements where 6 were declared", error.Message);
    }

    internal static PyTorchCheckpoint Write(TempFolder folder, bool zip, TorchTensor[] tensors, params (string Key, byte[] Data)[] storages)
    {
        var widths = tensors.DistinctBy(t => t.Key).ToDictionary(t => t.Key, t => StorageWidth(t.StorageType), StringComparer.Ordinal);
        return WriteRaw(folder, zip, TorchFiles.StateDictPickle(tensors, legacy: !zip), [.. storages.Select(s => (s.Key, s.Data, widths[s.Key]))]);
    }

    /// <summary>Writes a file around <paramref name="pickle"/>; the legacy format counts each storage in elements of <c>Width</c> bytes.</summary>
    internal static PyTorchCheckpoint WriteRaw(TempFolder folder, bool zip, byte[] pickle, (string Key, byte[] Data, int Width)[] storages)
    {
        var path = folder.File(zip ? "zip.bin" : "legacy.bin");
        if (zip)
        {
            TorchFiles.WriteZip(path, pickle, storages.ToDictionary(s => s.Key, s => s.Data));
        }
        else
        {
            TorchFiles.WriteLegacy(path, pickle, [.. storages.Select(s => (s.Key, (long)(s.Data.Length / s.Width), s.Data))]);
        }

        return PyTorchCheckpoint.Open(path);
    }

    internal static byte[] Bytes<T>(T[] values)
        where T : struct => MemoryMarshal.AsBytes(values.AsSpan()).ToArray();

    private static int StorageWidth(string storageType) => storageType switch
    {
        "DoubleStorage" or "LongStorage" => 8,
        "FloatStorage" or "IntStorage" => 4,
        "HalfStorage" or "BFloat16Storage" or "ShortStorage" => 2,
        _ => 1,
    };
}
