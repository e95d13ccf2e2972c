using System.Numerics.Tensors;

namespace OrleansGpu.Inference.BertScore;

/// <summary>bert_score's <c>greedy_cos_idf</c>: precision, recall and F1 of candidate/reference pairs.</summary>
public static class GreedyMatcher
{
    /// <summary>
    /// Scores pairs in input order. bert_score pads each chunk of <paramref name="chunkSize"/> pairs to its longest
    /// sentence and zeroes the padded similarities, so a token's best match is floored at 0 whenever the other
    /// sentence is shorter than the longest one on its side of the chunk; we keep that rule to stay equal.
    /// </summary>
    public static (float[] P, float[] R, float[] F) ScorePairs(
        IReadOnlyList<TokenEmbeddings> candidates,
        IReadOnlyList<TokenEmbeddings> references,
        IReadOnlyList<int[]> candidateIds,
        IReadOnlyList<int[]> referenceIds,
        TokenWeights weights,
        int chunkSize)
    {
        var n = candidates.Count;
        float[] p = new float[n], r = new float[n], f = new float[n];
        for (var start = 0; start < n; start += chunkSize)
        {
            var end = Math.Min(n, start + chunkSize);
            var longestCandidate = 0;
            var longestReference = 0;
            for (var i = start; i < end; i++)
            {
                longestCandidate = Math.Max(longestCandidate, candidates[i].Length);
                longestReference = Math.Max(longestReference, references[i].Length);
            }

            for (var i = start; i < end; i++)
            {
                (p[i], r[i], f[i]) = ScorePair(
                    candidates[i], references[i], candidateIds[i], referenceIds[i], weights,
                    floorPrecision: references[i].Length < longestReference,
                    floorRecall: candidates[i].Length < longestCandidate);
            }
        }

        return (p, r, f);
    }

    private static (float P, float R, float F) ScorePair(
        TokenEmbeddings candidate,
        TokenEmbeddings reference,
        int[] candidateIds,
        int[] referenceIds,
        TokenWeights weights,
        bool floorPrecision,
        bool floorRecall)
    {
        var lc = candidate.Length;
        var lr = reference.Length;
        var bestForCandidate = new float[lc];
        var bestForReference = new float[lr];
        Array.Fill(bestForCandidate, floorPrecision ? 0f : float.NegativeInfinity);
        Array.Fill(bestForReference, floorRecall ? 0f : float.NegativeInfinity);
        for (var a = 0; a < lc; a++)
        {
            var ca = candidate.Token(a);
            for (var b = 0; b < lr; b++)
            {
                var sim = Dot(ca, reference.Token(b));
                bestForCandidate[a] = MaxNaN(bestForCandidate[a], sim);
                bestForReference[b] = MaxNaN(bestForReference[b], sim);
            }
        }

        var precision = WeightedMean(bestForCandidate, candidateIds, weights);
        var recall = WeightedMean(bestForReference, referenceIds, weights);
        var f1 = 2f * precision * recall / (precision + recall);

        // An empty side ([CLS][SEP] only) scores 0; an undefined F (0/0, NaN) is 0; P or R may stay NaN as in bert_score.
        if (lc == 2 || lr == 2)
        {
            precision = 0f;
            recall = 0f;
        }

        if (float.IsNaN(f1))
        {
            f1 = 0f;
        }

        return (precision, recall, f1);
    }

    private static float WeightedMean(float[] values, int[] ids, TokenWeights weights)
    {
        var total = 0f;
        for (var k = 0; k < ids.Length; k++)
        {
            total += weights[ids[k]];
        }

        var mean = 0f;
        for (var k = 0; k < ids.Length; k++)
        {
            mean += values[k] * (weights[ids[k]] / total);
        }

        return mean;
    }

    // Vectorised fp32 sums, as bert_score's torch.bmm computes them; every oracle run still holds within 1e-5.
    private static float Dot(ReadOnlySpan<float> x, ReadOnlySpan<float> y) => TensorPrimitives.Dot(x, y);

    private static float MaxNaN(float current, float candidate) =>
        float.IsNaN(current) || float.IsNaN(candidate) ? float.NaN : Math.Max(current, candidate);
}
