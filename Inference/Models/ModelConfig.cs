using System.Text.Json;

namespace OrleansGpu.Inference.Models;

/// <summary>What we read from a model folder's <c>config.json</c>, <c>tokenizer_config.json</c> and <c>sentence_bert_config.json</c>.</summary>
public sealed record ModelConfig
{
    /// <summary>Hugging Face <c>model_type</c>: bert, roberta, deberta, distilbert, ...</summary>
    public string ModelType { get; init; } = "bert";

    public int? NumHiddenLayers { get; init; }

    public int? MaxPositionEmbeddings { get; init; }

    /// <summary>The tokenizer's <c>model_max_length</c> when it is a real limit (not Hugging Face's "unset" sentinel).</summary>
    public int? TokenizerMaxLength { get; init; }

    /// <summary>sentence-transformers' <c>max_seq_length</c> (256 for all-MiniLM-L6-v2).</summary>
    public int? SentenceMaxSeqLength { get; init; }

    public bool? DoLowerCase { get; init; }

    /// <summary>
    /// The longest input the tokenizer keeps (specials included): the tokenizer's own limit, else what the position
    /// embeddings allow (RoBERTa reserves two positions for its padding offset), else 512.
    /// </summary>
    public int TokenizerLimit
    {
        get
        {
            if (TokenizerMaxLength is { } max)
            {
                return max;
            }

            if (MaxPositionEmbeddings is { } positions)
            {
                return ModelType is "roberta" or "xlm-roberta" or "camembert" ? positions - 2 : positions;
            }

            return 512;
        }
    }

    /// <summary>The truncation length for embeddings: sentence-transformers' setting, else the tokenizer limit.</summary>
    public int EmbeddingLimit => SentenceMaxSeqLength ?? TokenizerLimit;

    public static ModelConfig Read(string directory)
    {
        var config = new ModelConfig();
        if (ReadJson(Path.Combine(directory, "config.json")) is { } c)
        {
            config = config with
            {
                ModelType = Str(c, "model_type") ?? config.ModelType,
                NumHiddenLayers = Int(c, "num_hidden_layers") ?? Int(c, "n_layers"),
                MaxPositionEmbeddings = Int(c, "max_position_embeddings"),
            };
        }

        if (ReadJson(Path.Combine(directory, "tokenizer_config.json")) is { } t)
        {
            var max = Long(t, "model_max_length");
            config = config with
            {
                TokenizerMaxLength = max is > 0 and < 1_000_000 ? (int)max : null,
                DoLowerCase = Bool(t, "do_lower_case"),
            };
        }

        if (ReadJson(Path.Combine(directory, "sentence_bert_config.json")) is { } s)
        {
            config = config with { SentenceMaxSeqLength = Int(s, "max_seq_length") };
        }

        return config;
    }

    private static JsonElement? ReadJson(string path)
    {
        if (!File.Exists(path))
        {
            return null;
        }

        using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
        return doc.RootElement.Clone();
    }

    private static string? Str(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static int? Int(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var i) ? i : null;

    private static double? Long(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;

    private static bool? Bool(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : null;
}
