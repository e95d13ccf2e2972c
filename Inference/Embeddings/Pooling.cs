using OrleansGpu.Inference.Onnx;

namespace OrleansGpu.Inference.Embeddings;

/// <summary>
/// sentence-transformers' pooling arithmetic on the host, from the hidden states of one sequence: for graphs that
/// cannot pool themselves (see <see cref="PoolingGraph"/>). Sums run in double.
/// </summary>
public static class Pooling
{
    /// <summary>
    /// Pools the first <paramref name="length"/> (unpadded) tokens of sequence <paramref name="sequence"/> with
    /// <paramref name="modes"/> into <paramref name="destination"/> (modes × hidden values, in sentence-transformers'
    /// order); then divides by the L2 norm when <paramref name="normalize"/>.
    /// </summary>
    public static void Pool(HiddenStates states, int sequence, int length, PoolingModes modes, Span<float> destination, bool normalize)
    {
        var hidden = states.HiddenSize;
        var at = 0;
        foreach (var mode in modes.InOrder())
        {
            var part = destination.Slice(at, hidden);
            switch (mode)
            {
                case PoolingModes.Cls:
                    states.Token(sequence, 0).CopyTo(part);
                    break;
                case PoolingModes.LastToken:
                    states.Token(sequence, Math.Max(length - 1, 0)).CopyTo(part);
                    break;
                case PoolingModes.Max:
                    Max(states, sequence, length, part);
                    break;
                case PoolingModes.Mean:
                    Weighted(states, sequence, length, part, weightOf: _ => 1, divide: n => Math.Max(n, 1e-9));
                    break;
                case PoolingModes.MeanSqrtLen:
                    Weighted(states, sequence, length, part, weightOf: _ => 1, divide: n => Math.Sqrt(Math.Max(n, 1e-9)));
                    break;
                case PoolingModes.WeightedMean:
                    Weighted(states, sequence, length, part, weightOf: t => t + 1, divide: n => Math.Max(n, 1e-9));
                    break;
            }

            at += hidden;
        }

        if (normalize)
        {
            L2Normalize(destination[..at], 1e-12f);
        }
    }

    /// <summary>Mean of the hidden vectors of the first <paramref name="length"/> tokens (see <see cref="Pool"/>).</summary>
    public static void MeanPool(HiddenStates states, int sequence, int length, Span<float> destination, bool normalize) =>
        Pool(states, sequence, length, PoolingModes.Mean, destination, normalize);

    /// <summary>Divides <paramref name="vector"/> by its L2 norm, or by <paramref name="floor"/> when the norm is smaller.</summary>
    public static void L2Normalize(Span<float> vector, float floor)
    {
        double squares = 0;
        foreach (var v in vector)
        {
            squares += (double)v * v;
        }

        var norm = (float)Math.Sqrt(squares);
        var divisor = Math.Max(norm, floor);
        for (var d = 0; d < vector.Length; d++)
        {
            vector[d] /= divisor;
        }
    }

    private static void Max(HiddenStates states, int sequence, int length, Span<float> destination)
    {
        // sentence-transformers sets padding to -1e9 before the maximum; here padding is never read, so -1e9 is the floor.
        destination.Fill(-1e9f);
        for (var t = 0; t < length; t++)
        {
            var token = states.Token(sequence, t);
            for (var d = 0; d < destination.Length; d++)
            {
                destination[d] = Math.Max(destination[d], token[d]);
            }
        }
    }

    private static void Weighted(HiddenStates states, int sequence, int length, Span<float> destination, Func<int, double> weightOf, Func<double, double> divide)
    {
        var hidden = destination.Length;
        Span<double> sum = hidden <= 4096 ? stackalloc double[hidden] : new double[hidden];
        sum.Clear();
        double total = 0;
        for (var t = 0; t < length; t++)
        {
            var weight = weightOf(t);
            total += weight;
            var token = states.Token(sequence, t);
            for (var d = 0; d < hidden; d++)
            {
                sum[d] += weight * token[d];
            }
        }

        var divisor = divide(total);
        for (var d = 0; d < hidden; d++)
        {
            destination[d] = (float)(sum[d] / divisor);
        }
    }
}
