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
