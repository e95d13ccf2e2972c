using OrleansGpu.Inference.Onnx;

namespace OrleansGpu.Inference.Embeddings;

/// <summary>sentence-transformers' pooling arithmetic.</summary>
public static class Pooling
{
    /// <summary>
    /// Mean of the hidden vectors of the first <paramref name="length"/> (unpadded) tokens of sequence
    /// <paramref name="sequence"/>, written to <paramref name="destination"/>; then divided by its L2 norm when
    /// <paramref name="normalize"/> (with torch's <c>F.normalize</c> floor of 1e-12).
    /// </summary>
    public static void MeanPool(HiddenStates states, int sequence, int length, Span<float> destination, bool normalize)
    {
        var hidden = states.HiddenSize;
        Span<double> sum = hidden <= 4096 ? stackalloc double[hidden] : new double[hidden];
        sum.Clear();
        for (var t = 0; t < length; t++)
        {
            var token = states.Token(sequence, t);
            for (var d = 0; d < hidden; d++)
            {
                sum[d] += token[d];
            }
        }

        var count = Math.Max(length, 1e-9);
        for (var d = 0; d < hidden; d++)
        {
            destination[d] = (float)(sum[d] / count);
        }

        if (normalize)
        {
            L2Normalize(destination, 1e-12f);
        }
    }

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
}
