using System.ComponentModel;
using System.Diagnostics;
using System.IO.Compression;
using OrleansGpu.Inference.Checkpoints;

namespace OrleansGpu.Tests.Inference.Checkpoints;

/// <summary>
/// Pickles that run code, or try to exhaust the reader, in both PyTorch containers: each is refused with a
/// <see cref="CheckpointException"/> saying what was found, and the file an exploit would create never appears.
/// </summary>
public sealed class HostilePickleTests
{
    private static readonly string Marker = Path.Combine(Path.GetTempPath(), $"orleansgpu-exploit-{Guid.NewGuid():N}");

    public static TheoryData<string> CaseNames() => [.. Cases(Marker).Keys];

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void A_hostile_pickle_is_refused_and_never_executed(string name)
    {
        var (pickle, expected) = Cases(Marker)[name];
        using var folder = new TempFolder();
        foreach (var zip in new[] { true, false })
        {
            var path = folder.File(zip ? "zip.bin" : "legacy.bin");
            if (zip)
            {
                TorchFiles.WriteZip(path, pickle, new Dictionary<string, byte[]> { ["0"] = new byte[24] });
            }
            else
            {
                // Refused before the storage list that would follow it is read.
                File.WriteAllBytes(path, [.. TorchFiles.LegacyPreamble(), .. pickle]);
            }

            var error = Assert.Throws<CheckpointException>(() => ModelWeights.OpenFile(path).Dispose());
            Assert.Contains(expected, error.Message);
            Assert.Contains(zip ? "data.pkl" : "legacy", error.Message);
        }

        Assert.False(File.Exists(Marker), "the exploit ran");
    }

    [Fact]
    public void A_truncated_state_dict_pickle_is_refused()
    {
        byte[] pickle;
        using (var fixture = ZipFile.OpenRead(ArchitectureFixtures.File("bert", "pytorch_model.bin")))
        using (var stream = fixture.GetEntry("pytorch_model/data.pkl")!.Open())
        using (var copy = new MemoryStream())
        {
            stream.CopyTo(copy);
            pickle = copy.ToArray();
        }

        using var folder = new TempFolder();
        foreach (var cut in new[] { pickle.Length - 1, pickle.Length / 2, 3 })
        {
            TorchFiles.WriteZip(folder.File("w.bin"), pickle[..cut], new Dictionary<string, byte[]>());
            var error = Assert.Throws<CheckpointException>(() => PyTorchCheckpoint.Open(folder.File("w.bin")));
            Assert.Contains("truncated", error.Message);
        }
    }

    [Fact]
    public void A_storage_claiming_more_elements_than_its_entry_holds_is_refused()
    {
        using var folder = new TempFolder();
        var pickle = TorchFiles.StateDictPickle([new TorchTensor("w", "FloatStorage", "0", 1000, 0, [1000], [1])]);
        TorchFiles.WriteZip(folder.File("w.bin"), pickle, new Dictionary<string, byte[]> { ["0"] = new byte[24] });

        var error = Assert.Throws<CheckpointException>(() => PyTorchCheckpoint.Open(folder.File("w.bin")));
        Assert.Contains("claims 1000 elements", error.Message);
    }

    [Fact]
    public void A_tensor_naming_a_storage_the_file_lacks_is_refused()
    {
        using var folder = new TempFolder();
        var pickle = TorchFiles.StateDictPickle([TorchTensor.Contiguous("w", "FloatStorage", "7", [6])]);
        TorchFiles.WriteZip(folder.File("w.bin"), pickle, new Dictionary<string, byte[]> { ["0"] = new byte[24] });

        var error = Assert.Throws<CheckpointException>(() => PyTorchCheckpoint.Open(folder.File("w.bin")));
        Assert.Contains("storage 7", error.Message);
    }

    [Fact]
    public void The_hostile_pickles_are_real_exploits_under_Python()
    {
        // The control: Python's own unpickler runs these payloads and creates the marker, so the test above would
        // notice a reader that executed them.
        string[] exploits = ["os.system", "builtins.eval", "posix.system", "subprocess.Popen (STACK_GLOBAL)"];
        using var folder = new TempFolder();
        foreach (var name in exploits)
        {
            var marker = folder.File($"marker-{exploits.ToList().IndexOf(name)}");
            var path = folder.File("exploit.pkl");
            File.WriteAllBytes(path, Cases(marker)[name].Pickle);
            var python = RunPython(path);
            Assert.SkipWhen(python is null, "python3 is not installed, so the exploits cannot be shown to work.");
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (!File.Exists(marker) && DateTime.UtcNow < deadline)
            {
                Thread.Sleep(20);
            }

            Assert.True(File.Exists(marker), $"{name}: Python did not run the payload ({python})");
        }
    }

    private static string? RunPython(string pickle)
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo("python3", ["-c", "import pickle, sys; pickle.load(open(sys.argv[1], 'rb'))", pickle])
            {
                RedirectStandardError = true,
                RedirectStandardOutput = true,
            })!;
            var error = process.StandardError.ReadToEnd();
            process.WaitForExit();
            return $"exit {process.ExitCode} {error}";
        }
        catch (Win32Exception)
        {
            return null;
        }
    }

    /// <summary>Each hostile pickle and a fragment of the error it must give.</summary>
    private static Dictionary<string, (byte[] Pickle, string Expected)> Cases(string marker)
    {
        static PickleBuilder Start(byte protocol = 2) => new PickleBuilder().Proto(protocol);
        var command = $"touch {marker}";
        var cases = new Dictionary<string, (byte[], string)>
        {
            ["os.system"] = (Start().Global("os", "system").String(command).Tuple1().Reduce().Stop().ToArray(), "the global os.system is refused"),
            ["builtins.eval"] = (Start().Global("builtins", "eval").String($"__import__('os').system('{command}')").Tuple1().Reduce().Stop().ToArray(), "builtins.eval"),
            ["posix.system"] = (Start().Global("posix", "system").String(command).Tuple1().Reduce().Stop().ToArray(), "posix.system"),
            ["__builtin__.eval (Python 2)"] = (Start().Global("__builtin__", "eval").String("1").Tuple1().Reduce().Stop().ToArray(), "__builtin__.eval"),
            ["subprocess.Popen (STACK_GLOBAL)"] = (Start(4).String("subprocess").String("Popen").Op(0x93)
                .EmptyList().Mark().String("touch").String(marker).Op((byte)'e').Tuple1().Reduce().Stop().ToArray(), "subprocess.Popen"),
            ["exploit inside a state dict"] = (Start().OrderedDict().Mark()
                .String("w").Raw(TensorPickle(TorchTensor.Contiguous("w", "FloatStorage", "0", [6])))
                .String("x").Global("os", "system").String(command).Tuple1().Reduce().SetItems().Stop().ToArray(), "os.system"),
            ["INST"] = (Start().Mark().String(command).Op((byte)'i').Raw("os\nsystem\n"u8.ToArray()).Stop().ToArray(), "opcode INST (an instance of os.system)"),
            ["OBJ"] = (Start().Mark().Global("collections", "OrderedDict").Op((byte)'o').Stop().ToArray(), "opcode OBJ"),
            ["NEWOBJ of a storage"] = (Start().Global("torch", "FloatStorage").EmptyTuple().Op(0x81).Stop().ToArray(), "NEWOBJ of torch.FloatStorage"),
            ["REDUCE of a storage"] = (Start().Global("torch", "FloatStorage").EmptyTuple().Reduce().Stop().ToArray(), "REDUCE calls torch.FloatStorage"),
            ["unknown opcode"] = (Start().Op(0xff).Stop().ToArray(), "unknown opcode (0xff)"),
            ["EXT1"] = (Start().Op(0x82).Raw(1).Stop().ToArray(), "EXT1"),
            ["no STOP"] = (Start().EmptyDict().ToArray(), "truncated"),
            ["huge string length"] = (Start().Op((byte)'X').UInt32(0xFFFFFFF0).Raw("abc"u8.ToArray()).ToArray(), "truncated"),
            ["huge integer"] = (Start().Op(0x8b).UInt32(1_000_000).ToArray(), "an integer of 1000000 bytes"),
            ["memo read before write"] = (Start().Get(5).Stop().ToArray(), "memo entry 5"),
            ["deeply nested tuples"] = (Start().EmptyTuple().Raw([.. Enumerable.Repeat((byte)0x85, 1000)]).Stop().ToArray(), "nested more than 100"),
            ["deeply nested MARKs"] = (Start().Raw([.. Enumerable.Repeat((byte)'(', 100_000)]).Stop().ToArray(), "MARKs nested"),
            ["a list holding itself"] = (SelfContaining(), "nested more than 100"),
            ["millions of values"] = (Start().Raw([.. Enumerable.Repeat((byte)'N', 4_000_002)]).Stop().ToArray(), "more than 4000000 values"),
            ["a whole pickled model"] = (Start().Mark().String("module").None().None().None().Tuple().BinPersId().Stop().ToArray(), "whole pickled model"),
            ["not a dict"] = (Start().EmptyList().Stop().ToArray(), "not a state dict"),
            ["complex storage"] = (StateDict(TorchTensor.Contiguous("w", "ComplexFloatStorage", "0", [3])), "torch.ComplexFloatStorage are not supported"),
            ["negative size"] = (StateDict(new TorchTensor("w", "FloatStorage", "0", 6, 0, [-1], [1])), "size with the entry -1"),
            ["huge size"] = (StateDict(new TorchTensor("w", "FloatStorage", "0", 6, 0, [1L << 40, 1L << 40], [1L << 40, 1])), "too large"),
            ["negative storage size"] = (StateDict(new TorchTensor("w", "FloatStorage", "0", -6, 0, [1], [1])), "negative size"),
            ["offset past the storage"] = (StateDict(new TorchTensor("w", "FloatStorage", "0", 6, 10, [1], [1])), "reaches past storage 0"),
            ["stride past the storage"] = (StateDict(new TorchTensor("w", "FloatStorage", "0", 6, 0, [2, 3], [100, 1])), "reaches past storage 0"),
            ["not a persistent id"] = (Start().String("os").BinPersId().Stop().ToArray(), "persistent id"),
        };
        return cases;
    }

    private static byte[] SelfContaining()
    {
        var b = new PickleBuilder().Proto(2).EmptyList().Put(0);
        for (var i = 0; i < 200; i++)
        {
            b.Get(0).Append();
        }

        return b.Stop().ToArray();
    }

    private static byte[] StateDict(TorchTensor tensor) => TorchFiles.StateDictPickle([tensor]);

    private static byte[] TensorPickle(TorchTensor tensor)
    {
        var b = new PickleBuilder();
        TorchFiles.WriteTensor(b, tensor, legacy: false);
        return b.ToArray();
    }
}
