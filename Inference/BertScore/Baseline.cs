using System.Globalization;

namespace OrleansGpu.Inference.BertScore;

/// <summary>A rescale baseline for one layer: the average P, R and F of random sentence pairs.</summary>
public sealed record Baseline(float Precision, float Recall, float F1)
{
    /// <summary>bert_score's rescaling, in float32: <c>(x − b) / (1 − b)</c>.</summary>
    public (float P, float R, float F) Rescale(float p, float r, float f) =>
        ((p - Precision) / (1f - Precision), (r - Recall) / (1f - Recall), (f - F1) / (1f - F1));

    /// <summary>
    /// Reads row <paramref name="layer"/> of a bert_score baseline file (comma-separated, header <c>LAYER,P,R,F</c>,
    /// one row per layer from 0). Like bert_score, the row is picked by position.
    /// </summary>
    public static Baseline Parse(TextReader reader, int layer, string source)
    {
        var rows = new List<string>();
        string? line;
        while ((line = reader.ReadLine()) is not null)
        {
            if (line.Trim().Length > 0)
            {
                rows.Add(line);
            }
        }

        if (rows.Count < 2 || !rows[0].StartsWith("LAYER", StringComparison.OrdinalIgnoreCase))
        {
            throw new InvalidDataException($"{source} is not a bert_score baseline file (header LAYER,P,R,F).");
        }

        if (layer < 0 || layer + 1 >= rows.Count)
        {
            throw new BaselineNotFoundException($"{source} has no row for layer {layer} (it has layers 0..{rows.Count - 2}).");
        }

        var cells = rows[layer + 1].Split(',');
        if (cells.Length < 4)
        {
            throw new InvalidDataException($"{source}: row {layer} does not hold LAYER,P,R,F.");
        }

        float Cell(int i) => float.Parse(cells[i], NumberStyles.Float, CultureInfo.InvariantCulture);
        return new Baseline(Cell(1), Cell(2), Cell(3));
    }

    /// <summary>
    /// The baseline bert_score ships for <paramref name="model"/> in language <paramref name="lang"/> at
    /// <paramref name="layer"/>, or throws <see cref="BaselineNotFoundException"/>.
    /// </summary>
    public static Baseline ForModel(string lang, string model, int layer)
    {
        var resource = $"baselines/{lang.ToLowerInvariant()}/{model}.tsv";
        using var stream = typeof(Baseline).Assembly.GetManifestResourceStream(resource)
            ?? throw new BaselineNotFoundException(
                $"No rescale baseline for model '{model}' in language '{lang}'. Pass your own baseline values, or score without rescaling.");
        using var reader = new StreamReader(stream);
        return Parse(reader, layer, resource);
    }

    /// <summary>Whether a shipped baseline exists for this model and language.</summary>
    public static bool Exists(string lang, string model) =>
        typeof(Baseline).Assembly.GetManifestResourceInfo($"baselines/{lang.ToLowerInvariant()}/{model}.tsv") is not null;
}

/// <summary>Rescaling was asked for but no baseline applies.</summary>
public sealed class BaselineNotFoundException(string message) : Exception(message);
