using OrleansGpu.Inference.Checkpoints;

namespace OrleansGpu.Tests.Inference.Checkpoints;

/// <summary>
/// Seeded byte mutations of real fixtures: whatever a damaged or hostile file holds, the readers either read it or
/// throw <see cref="CheckpointException"/> – never another exception, never a crash, never a hang.
/// </summary>
public sealed class CheckpointFuzzTests
{
    private const int Mutations = 1500;

    [Theory]
    [InlineData("deberta", "pytorch_model.bin", 11)]
    [InlineData("bert", "pytorch_model.legacy.bin", 12)]
    [InlineData("roberta", "model.safetensors", 13)]
    public async Task Mutated_checkpoints_only_ever_throw_CheckpointException(string architecture, string file, int seed)
    {
        using var folder = new TempFolder();
        var path = folder.File(file);
        var original = File.ReadAllBytes(ArchitectureFixtures.File(architecture, file));
        File.WriteAllBytes(path, original);

        var outcome = await Task.Run(() => Fuzz(path, original, seed), TestContext.Current.CancellationToken)
            .WaitAsync(TimeSpan.FromMinutes(3), TestContext.Current.CancellationToken);

        // Both outcomes happen, so the mutations reach the parsers and not only the tensor data.
        Assert.True(outcome.Refused > Mutations / 20, $"only {outcome.Refused} of {Mutations} mutations were refused");
        Assert.True(outcome.Read > 0, "no mutation was readable");
    }

    private static (int Read, int Refused) Fuzz(string path, byte[] original, int seed)
    {
        var random = new Random(seed);
        var read = 0;
        var refused = 0;
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
        for (var i = 0; i < Mutations; i++)
        {
            var positions = new List<long>();
            var changed = Mutate(stream, original, random, positions);
            try
            {
                using var checkpoint = ModelWeights.OpenFile(path);
                foreach (var name in checkpoint.Names)
                {
                    var info = checkpoint.Info(name);
                    _ = checkpoint.ReadBytes(name);
                    if (info.IsFloatingPoint)
                    {
                        _ = checkpoint.ReadFloat32(name);
                    }
                }

                read++;
            }
            catch (CheckpointException)
            {
                refused++;
            }
            catch (Exception ex)
            {
                Assert.Fail($"mutation {i} (seed {seed}: {changed}) threw {ex.GetType().Name}: {ex}");
            }
            finally
            {
                Restore(stream, original, positions);
            }
        }

        return (read, refused);
    }

    /// <summary>
    /// Changes a few bytes in place – mostly where the parsers look (the first and last kilobytes: headers,
    /// pickles, the zip directory) – or truncates the file. Returns what it did, for the failure message.
    /// </summary>
    private static string Mutate(FileStream stream, byte[] original, Random random, List<long> positions)
    {
        if (random.Next(20) == 0)
        {
            var length = random.Next(original.Length);
            stream.SetLength(length);
            return $"truncated to {length}";
        }

        var changes = new List<string>();
        for (var n = random.Next(1, 4); n > 0; n--)
        {
            var region = random.Next(10);
            var at = region switch
            {
                < 5 => random.Next(Math.Min(original.Length, 12_000)),
                < 8 => original.Length - 1 - random.Next(Math.Min(original.Length, 8_000)),
                _ => random.Next(original.Length),
            };
            var value = random.Next(6) switch
            {
                0 => (byte)(original[at] ^ (1 << random.Next(8))),
                1 => (byte)0,
                2 => (byte)0xff,
                3 => (byte)(original[at] + (random.Next(2) == 0 ? 1 : -1)),
                4 when original[at] is >= (byte)'0' and <= (byte)'9' => (byte)('0' + random.Next(10)),
                _ => (byte)random.Next(256),
            };
            stream.Position = at;
            stream.WriteByte(value);
            positions.Add(at);
            changes.Add($"[{at}]={value:x2}");
        }

        stream.Flush();
        return string.Join(" ", changes);
    }

    /// <summary>Puts back what <see cref="Mutate"/> changed: the cut-off tail, or the bytes it overwrote.</summary>
    private static void Restore(FileStream stream, byte[] original, List<long> positions)
    {
        if (stream.Length != original.Length)
        {
            var cut = stream.Length;
            stream.Position = cut;
            stream.Write(original, (int)cut, original.Length - (int)cut);
        }

        foreach (var at in positions)
        {
            stream.Position = at;
            stream.WriteByte(original[at]);
        }

        stream.Flush();
    }
}
