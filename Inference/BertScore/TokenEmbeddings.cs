using OrleansGpu.Inference.Onnx;

namespace OrleansGpu.Inference.BertScore;

/// <summary>The L2-normalised hidden vector of every token of one sentence, <c>[Length, Hidden]</c> row-major.</summary>
public sealed class TokenEmbeddings
{
    private TokenEmbeddings(float[] values, int length, int hidden)
    {
        Values = values;
        Length = length;
        Hidden = hidden;
    }

    public float[] Values { get; }

    public int Length { get; }

    public int Hidden { get; }

    public ReadOnlySpan<float> Token(int index) => Values.AsSpan(index * Hidden, Hidden);

    /// <summary>
    /// Copies the first <paramref name="length"/> token vectors of a sequence and divides each by its norm, as
    /// bert_score does (no epsilon: a zero vector gives NaN there too).
    /// </summary>
    public static TokenEmbeddings FromStates(HiddenStates states, int sequence, int length)
    {
        var hidden = states.HiddenSize;
        var values = new float[length * hidden];
        for (var t = 0; t < length; t++)
        {
            var source = states.Token(sequence, t);
            var target = values.AsSpan(t * hidden, hidden);
            source.CopyTo(target);
            double squares = 0;
            foreach (var v in target)
            {
                squares += (double)v * v;
            }

            var norm = (float)Math.Sqrt(squares);
            for (var d = 0; d < hidden; d++)
            {
                target[d] /= norm;
            }
        }

        return new TokenEmbeddings(values, length, hidden);
    }
}
