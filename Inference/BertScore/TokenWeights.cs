using OrleansGpu.Inference.Tokenization;

namespace OrleansGpu.Inference.BertScore;

/// <summary>How much each token id counts in the precision and recall averages.</summary>
public sealed class TokenWeights
{
    private readonly Dictionary<int, float> _weights;
    private readonly float _default;

    private TokenWeights(Dictionary<int, float> weights, float @default)
    {
        _weights = weights;
        _default = @default;
    }

    public float this[int id] => _weights.TryGetValue(id, out var w) ? w : _default;

    /// <summary>The weights of the ids listed (for idf: those some reference contains).</summary>
    public IReadOnlyDictionary<int, float> Listed => _weights;

    /// <summary>The weight of every id not in <see cref="Listed"/>.</summary>
    public float Unlisted => _default;

    /// <summary>
    /// Weights computed elsewhere (another host's <see cref="InverseDocumentFrequency"/> over the references of a whole
    /// request, of which this call scores a part), as <see cref="Listed"/> and <see cref="Unlisted"/> gave them.
    /// </summary>
    public static TokenWeights FromTable(IReadOnlyList<int> ids, IReadOnlyList<float> weights, float unlisted)
    {
        if (ids.Count != weights.Count)
        {
            throw new ArgumentException($"The idf table has {ids.Count} token ids and {weights.Count} weights; the counts must be equal.");
        }

        var table = new Dictionary<int, float>(ids.Count);
        for (var k = 0; k < ids.Count; k++)
        {
            if (!float.IsFinite(weights[k]) || !table.TryAdd(ids[k], weights[k]))
            {
                throw new ArgumentException($"The idf table's entry for token {ids[k]} is repeated or not a finite number.");
            }
        }

        return float.IsFinite(unlisted)
            ? new TokenWeights(table, unlisted)
            : throw new ArgumentException("The idf table's weight for unlisted tokens is not a finite number.");
    }

    /// <summary>Without idf: every token weighs 1 except the sequence start and end tokens, which weigh 0.</summary>
    public static TokenWeights Uniform(SpecialTokenIds special) =>
        new(new Dictionary<int, float> { [special.Start] = 0f, [special.End] = 0f }, 1f);

    /// <summary>
    /// bert_score's <c>get_idf_dict</c>: with M references, <c>idf(t) = ln((M + 1) / (df(t) + 1))</c> where df counts
    /// the references that contain t; ids no reference contains get <c>ln(M + 1)</c>. Special tokens occur in every
    /// reference and so weigh 0.
    /// </summary>
    public static TokenWeights InverseDocumentFrequency(IEnumerable<int[]> references)
    {
        var documentFrequency = new Dictionary<int, int>();
        var m = 0;
        foreach (var ids in references)
        {
            m++;
            foreach (var id in ids.Distinct())
            {
                documentFrequency[id] = documentFrequency.GetValueOrDefault(id) + 1;
            }
        }

        var weights = documentFrequency.ToDictionary(kv => kv.Key, kv => (float)Math.Log((m + 1.0) / (kv.Value + 1.0)));
        return new TokenWeights(weights, (float)Math.Log(m + 1.0));
    }
}
