using System.Text;
using System.Text.Json;
using OrleansGpu.Inference.Tokenization;

namespace OrleansGpu.Tests.Support;

/// <summary>
/// The tiny DeBERTa v1 of <c>shared/oracles/architectures/deberta</c> (modelled on microsoft/deberta-xlarge-mnli) as
/// a hub repo like the real one: <c>config.json</c>, <c>pytorch_model.bin</c> (task prefix, classifier head and the
/// <c>config</c> entry included), no ONNX, and a GPT-2-style <c>vocab.json</c> + <c>merges.txt</c> made here for its
/// 256 ids, so that texts tokenize to the oracle's inputs and BERTScore can be computed from the oracle's own hidden
/// states (<see cref="ExpectedScores"/>), independently of the service.
/// </summary>
/// <remarks>
/// Each id from 4 up is a two-letter word (<see cref="Word"/>). bert_score gives DeBERTa no prefix space, so a text's
/// first word is tokenized without the "Ġ" that marks the words after a space: both spellings are in the vocabulary,
/// under the same id. Merges join the two letters, then "Ġ" to the pair.
/// </remarks>
public static class TinyDeberta
{
    public const int Cls = 1;

    public const int Sep = 2;

    private const string Letters = "abcdefghijklmnop";

    private static readonly string Space = ByteLevelBpeTokenizer.SymbolForByte((byte)' ');

    public static ArchitectureOracle Oracle { get; } = ArchitectureOracles.Load("deberta");

    /// <summary>The repo's files, as the hub would serve them.</summary>
    public static Dictionary<string, byte[]> Repo()
    {
        var folder = ArchitectureOracles.Folder("deberta");
        var vocabulary = new Dictionary<string, int> { ["[PAD]"] = 0, ["[CLS]"] = Cls, ["[SEP]"] = Sep, ["[UNK]"] = 3 };
        var merges = new StringBuilder("#version: 0.2\n");
        var spaced = new StringBuilder();
        for (var id = 4; id < 256; id++)
        {
            var word = Word(id);
            vocabulary[word] = id;
            vocabulary[Space + word] = id;
            merges.Append(word[0]).Append(' ').Append(word[1]).Append('\n');
            spaced.Append(Space).Append(' ').Append(word).Append('\n');
        }

        merges.Append(spaced);
        return new Dictionary<string, byte[]>
        {
            ["config.json"] = File.ReadAllBytes(Path.Combine(folder, "config.json")),
            ["pytorch_model.bin"] = File.ReadAllBytes(Path.Combine(folder, "pytorch_model.bin")),
            ["vocab.json"] = JsonSerializer.SerializeToUtf8Bytes(vocabulary),
            ["merges.txt"] = Encoding.UTF8.GetBytes(merges.ToString()),
        };
    }

    /// <summary>The word that tokenizes to <paramref name="id"/> (4 to 255).</summary>
    public static string Word(int id) => $"{Letters[id >> 4]}{Letters[id & 15]}";

    /// <summary>A text that tokenizes to the oracle's input <paramref name="input"/>, [CLS] and [SEP] added by the tokenizer.</summary>
    public static string Text(int input)
    {
        var ids = Oracle.Inputs[input].InputIds[..Oracle.Lengths[input]];
        Assert.Equal(Cls, ids[0]);
        Assert.Equal(Sep, ids[^1]);
        return string.Join(' ', ids[1..^1].Select(id => Word((int)id)));
    }

    /// <summary>
    /// BERTScore of the oracle inputs <paramref name="candidates"/>[k] against <paramref name="references"/>[k] at
    /// <paramref name="layer"/>, from the oracle's hidden states, as bert_score 0.3.13 computes it
    /// (<c>shared/reference/bertscore-semantics.md</c> §1.5–1.6): every token vector L2-normalised, greedy cosine
    /// matching over all tokens ([CLS] and [SEP] included as targets), a token's best match floored at 0 when the other
    /// sentence is shorter than the longest on its side of the chunk (all pairs are one chunk here), weights 0 for
    /// [CLS]/[SEP] without idf, or idf from the references, F = 2PR/(P+R).
    /// </summary>
    public static (double[] P, double[] R, double[] F) ExpectedScores(int[] candidates, int[] references, int layer, bool idf) =>
        ExpectedScores(Oracle, candidates, references, layer, idf);

    /// <summary>The same, over the hidden states of another oracle whose [CLS] and [SEP] are 1 and 2 (DeBERTa v2).</summary>
    public static (double[] P, double[] R, double[] F) ExpectedScores(ArchitectureOracle oracle, int[] candidates, int[] references, int layer, bool idf)
    {
        var Oracle = oracle;
        var n = candidates.Length;
        var ids = Enumerable.Range(0, Oracle.Inputs.Length).Select(i => Oracle.Inputs[i].InputIds[..Oracle.Lengths[i]]).ToArray();
        var idfWeights = InverseDocumentFrequencies(references.Select(r => ids[r]).ToList());
        double Weight(long id) => idf ? idfWeights(id) : id is Cls or Sep ? 0 : 1;

        var longestCandidate = candidates.Max(c => Oracle.Lengths[c]);
        var longestReference = references.Max(r => Oracle.Lengths[r]);
        double[] p = new double[n], r = new double[n], f = new double[n];
        for (var k = 0; k < n; k++)
        {
            var c = Normalised(Oracle.HiddenStates[candidates[k]][layer]);
            var h = Normalised(Oracle.HiddenStates[references[k]][layer]);
            var bestForCandidate = Enumerable.Repeat(Oracle.Lengths[references[k]] < longestReference ? 0.0 : double.NegativeInfinity, c.Length).ToArray();
            var bestForReference = Enumerable.Repeat(Oracle.Lengths[candidates[k]] < longestCandidate ? 0.0 : double.NegativeInfinity, h.Length).ToArray();
            for (var a = 0; a < c.Length; a++)
            {
                for (var b = 0; b < h.Length; b++)
                {
                    var sim = c[a].Zip(h[b], (x, y) => x * y).Sum();
                    bestForCandidate[a] = Math.Max(bestForCandidate[a], sim);
                    bestForReference[b] = Math.Max(bestForReference[b], sim);
                }
            }

            p[k] = WeightedMean(bestForCandidate, ids[candidates[k]], Weight);
            r[k] = WeightedMean(bestForReference, ids[references[k]], Weight);
            f[k] = 2 * p[k] * r[k] / (p[k] + r[k]);
        }

        return (p, r, f);
    }

    private static double[][] Normalised(float[][] vectors) => [.. vectors.Select(v =>
    {
        var norm = Math.Sqrt(v.Sum(x => (double)x * x));
        return v.Select(x => x / norm).ToArray();
    })];

    private static double WeightedMean(double[] values, long[] ids, Func<long, double> weight)
    {
        var total = ids.Sum(weight);
        return values.Select((v, i) => v * weight(ids[i])).Sum() / total;
    }

    /// <summary>bert_score's <c>get_idf_dict</c>: log((M + 1) / (df + 1)) over the M references, log(M + 1) for ids they lack.</summary>
    private static Func<long, double> InverseDocumentFrequencies(IReadOnlyList<long[]> references)
    {
        var documentFrequency = references.SelectMany(ids => ids.Distinct()).GroupBy(id => id).ToDictionary(g => g.Key, g => g.Count());
        var m = references.Count;
        return id => Math.Log((m + 1.0) / (documentFrequency.GetValueOrDefault(id) + 1.0));
    }
}
