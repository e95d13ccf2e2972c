namespace OrleansGpu.Inference.BertScore;

/// <summary>One <c>bert_score.score(...)</c> call.</summary>
public sealed record BertScoreRequest
{
    public required IReadOnlyList<string> Candidates { get; init; }

    /// <summary>One or more references per candidate (several: the best score per metric is kept).</summary>
    public required IReadOnlyList<IReadOnlyList<string>> References { get; init; }

    /// <summary>The hidden layer to use; null takes bert_score's default for the model (else its last layer).</summary>
    public int? NumLayers { get; init; }

    /// <summary>Weigh tokens by inverse document frequency over the references of this call.</summary>
    public bool Idf { get; init; }

    /// <summary>
    /// With <see cref="Idf"/>: weights computed beforehand by <see cref="BertScoreModel.InverseDocumentFrequency"/> over
    /// the references of a larger call this one is a part of, so that the part scores as the whole call would. Null:
    /// from the references of this call.
    /// </summary>
    public TokenWeights? IdfWeights { get; init; }

    /// <summary>Rescale with a baseline: <see cref="Baseline"/> when given, else the one bert_score ships for the model.</summary>
    public bool RescaleWithBaseline { get; init; }

    /// <summary>Language of the shipped baseline (bert_score's <c>lang</c>).</summary>
    public string Lang { get; init; } = "en";

    /// <summary>Caller-given baseline values (bert_score's <c>baseline_path</c>); the hash then says <c>custom-rescaled</c>.</summary>
    public Baseline? Baseline { get; init; }

    /// <summary>
    /// Pairs per matching chunk (bert_score's <c>batch_size</c>, default 64), which its numbers depend on, and the
    /// chunk of progress reports. The forward passes are the model's (<see cref="Embeddings.BatchLimits"/>).
    /// </summary>
    public int BatchSize { get; init; } = 64;

    /// <summary>Pairs each candidate with one reference.</summary>
    public static IReadOnlyList<IReadOnlyList<string>> Single(IReadOnlyList<string> references) =>
        [.. references.Select(r => (IReadOnlyList<string>)[r])];
}

/// <summary>Scores in input order, the layer used, and bert_score's hash string for reporting.</summary>
public sealed record BertScoreResult(float[] Precision, float[] Recall, float[] F1, int NumLayers, string Hash);
