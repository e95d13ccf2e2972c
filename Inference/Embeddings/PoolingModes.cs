namespace OrleansGpu.Inference.Embeddings;

/// <summary>
/// sentence-transformers' pooling modes (its <c>Pooling</c> module). Several may be on at once: the vectors are then
/// concatenated in <see cref="Order"/>, as sentence-transformers does.
/// </summary>
[Flags]
public enum PoolingModes
{
    None = 0,

    /// <summary>The first token's vector ([CLS]).</summary>
    Cls = 1,

    /// <summary>The largest value of each dimension over the real tokens (padding counts as -1e9).</summary>
    Max = 2,

    /// <summary>The mean over the real tokens.</summary>
    Mean = 4,

    /// <summary>The sum over the real tokens divided by the square root of their count.</summary>
    MeanSqrtLen = 8,

    /// <summary>The mean weighted by position (1, 2, 3, ...), as SGPT.</summary>
    WeightedMean = 16,

    /// <summary>The last real token's vector.</summary>
    LastToken = 32,
}

public static class PoolingModesExtensions
{
    /// <summary>The order in which sentence-transformers concatenates the modes that are on.</summary>
    public static IReadOnlyList<PoolingModes> Order { get; } =
        [PoolingModes.Cls, PoolingModes.Max, PoolingModes.Mean, PoolingModes.MeanSqrtLen, PoolingModes.WeightedMean, PoolingModes.LastToken];

    /// <summary>The modes that are on, in concatenation order.</summary>
    public static IReadOnlyList<PoolingModes> InOrder(this PoolingModes modes) => [.. Order.Where(m => modes.HasFlag(m))];

    /// <summary>How many vectors of the hidden size one text's embedding concatenates.</summary>
    public static int Count(this PoolingModes modes) => Order.Count(m => modes.HasFlag(m));

    /// <summary>sentence-transformers' name for the modes (<c>mean</c>, <c>cls</c>, <c>cls+mean</c>, ...).</summary>
    public static string Describe(this PoolingModes modes) => string.Join('+', modes.InOrder().Select(m => m switch
    {
        PoolingModes.Cls => "cls",
        PoolingModes.Max => "max",
        PoolingModes.Mean => "mean",
        PoolingModes.MeanSqrtLen => "mean_sqrt_len_tokens",
        PoolingModes.WeightedMean => "weightedmean",
        _ => "lasttoken",
    }));
}
