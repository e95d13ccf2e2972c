namespace OrleansGpu.Inference.Embeddings;

/// <summary>How many sequences go into one forward pass.</summary>
public static class Batching
{
    /// <summary>
    /// With sequences sorted longest first, a batch starting with a sequence of <paramref name="longest"/> tokens
    /// takes at most <paramref name="batchSize"/> sequences and at most <paramref name="maxBatchTokens"/> padded
    /// tokens, and never fewer than one.
    /// </summary>
    public static int Size(int longest, int batchSize, int maxBatchTokens, int remaining)
    {
        var byTokens = Math.Max(1, maxBatchTokens / Math.Max(1, longest));
        return Math.Max(1, Math.Min(Math.Min(Math.Max(1, batchSize), byTokens), remaining));
    }
}
