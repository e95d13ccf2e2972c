namespace OrleansGpu.Inference.BertScore;

/// <summary>bert_score 0.3.13's per-model conventions: the default layer and whether a prefix space is added.</summary>
public static class BertScoreDefaults
{
    /// <summary>
    /// bert_score's <c>model2layers</c> for the models we know it for (the layer with the best WMT16 correlation).
    /// Models not listed use all their layers.
    /// </summary>
    private static readonly Dictionary<string, int> DefaultLayers = new(StringComparer.OrdinalIgnoreCase)
    {
        ["microsoft/deberta-xlarge-mnli"] = 40,
        ["microsoft/deberta-xlarge"] = 18,
        ["microsoft/deberta-large-mnli"] = 18,
        ["microsoft/deberta-large"] = 16,
        ["microsoft/deberta-base-mnli"] = 9,
        ["microsoft/deberta-base"] = 9,
        ["roberta-large"] = 17,
        ["roberta-large-mnli"] = 19,
        ["roberta-base"] = 10,
        ["distilroberta-base"] = 5,
        ["bert-base-uncased"] = 9,
        ["bert-large-uncased"] = 18,
        ["bert-base-multilingual-cased"] = 9,
        ["distilbert-base-uncased"] = 5,
        ["xlm-roberta-base"] = 9,
        ["xlm-roberta-large"] = 17,
    };

    /// <summary>The hub moved some of bert_score's bare names under organisations; either spelling finds the default.</summary>
    private static readonly string[] LegacyOrganisations = ["FacebookAI/", "google-bert/", "distilbert/"];

    /// <summary>The layer bert_score uses for <paramref name="model"/> by default, if it has one (a pinned revision, <c>@v1</c>, changes nothing).</summary>
    public static int? DefaultLayer(string model)
    {
        var at = model.IndexOf('@', StringComparison.Ordinal);
        model = at < 0 ? model : model[..at];
        if (DefaultLayers.TryGetValue(model, out var layer))
        {
            return layer;
        }

        foreach (var org in LegacyOrganisations)
        {
            if (model.StartsWith(org, StringComparison.OrdinalIgnoreCase) && DefaultLayers.TryGetValue(model[org.Length..], out layer))
            {
                return layer;
            }
        }

        return null;
    }

    /// <summary>Whether <paramref name="model"/> is in bert_score's model table (either spelling of a moved name).</summary>
    public static bool IsKnownModel(string model) => DefaultLayer(model) is not null;

    /// <summary>
    /// Whether bert_score 0.3.13 puts a space before each text for this Hugging Face <c>model_type</c>: it does for
    /// the GPT-2 and RoBERTa tokenizer classes (<c>add_prefix_space=True</c>), not for DeBERTa's (its own class since
    /// transformers 4.24), nor for WordPiece models.
    /// </summary>
    public static bool AddsPrefixSpace(string modelType) =>
        modelType.ToLowerInvariant() is "roberta" or "gpt2" or "camembert" or "longformer" or "bart";
}
