using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace OrleansGpu.Inference.Graphs;

/// <summary>
/// The architecture a Hugging Face <c>config.json</c> describes, with the hub's key names (and DistilBERT's own:
/// <c>dim</c>, <c>n_heads</c>, <c>n_layers</c>, <c>hidden_dim</c>, <c>activation</c>). A key the file leaves out takes
/// the default of the transformers 4.30 configuration class for its <c>model_type</c>, as transformers would.
/// </summary>
public sealed record ModelArchitectureConfig
{
    /// <summary>The <c>model_type</c> values the native builder supports.</summary>
    public static IReadOnlyList<string> SupportedModelTypes { get; } =
        ["bert", "camembert", "deberta", "deberta-v2", "distilbert", "mpnet", "roberta", "xlm-roberta"];

    /// <summary><c>model_type</c>, lower case, with transformers' underscore spellings (<c>deberta_v2</c>) normalised to the hub's.</summary>
    public required string ModelType { get; init; }

    public required int HiddenSize { get; init; }

    public required int NumAttentionHeads { get; init; }

    public required int NumHiddenLayers { get; init; }

    public required int IntermediateSize { get; init; }

    /// <summary><c>hidden_act</c> (<c>activation</c> for DistilBERT).</summary>
    public required string HiddenAct { get; init; }

    /// <summary><c>layer_norm_eps</c>; DistilBERT has none in its config and hard-codes 1e-12.</summary>
    public required double LayerNormEps { get; init; }

    public required int MaxPositionEmbeddings { get; init; }

    public required int PadTokenId { get; init; }

    /// <summary><c>vocab_size</c>: the word embedding table's rows.</summary>
    public required int VocabSize { get; init; }

    public required int TypeVocabSize { get; init; }

    /// <summary>BERT's <c>position_embedding_type</c>; only <c>absolute</c> is built.</summary>
    public string PositionEmbeddingType { get; init; } = "absolute";

    // DeBERTa (v1 and v2/v3).

    public bool RelativeAttention { get; init; }

    /// <summary><c>max_relative_positions</c>; below 1 means <see cref="MaxPositionEmbeddings"/>.</summary>
    public int MaxRelativePositions { get; init; } = -1;

    /// <summary>DeBERTa v2's <c>position_buckets</c>; 0 or below means no log buckets.</summary>
    public int PositionBuckets { get; init; } = -1;

    /// <summary><c>pos_att_type</c> as a set: <c>c2p</c>, <c>p2c</c> (the config writes <c>"c2p|p2c"</c> or a list).</summary>
    public IReadOnlyList<string> PosAttType { get; init; } = [];

    public bool ShareAttKey { get; init; }

    /// <summary>DeBERTa v2's <c>norm_rel_ebd</c>: <c>none</c> or <c>layer_norm</c>.</summary>
    public string NormRelEbd { get; init; } = "none";

    public bool PositionBiasedInput { get; init; } = true;

    /// <summary>DeBERTa's <c>embedding_size</c> when it differs from the hidden size (an extra projection).</summary>
    public int? EmbeddingSize { get; init; }

    public bool TalkingHead { get; init; }

    public int ConvKernelSize { get; init; }

    /// <summary>SHA-256 of the JSON this was read from, for cache keys.</summary>
    public string Fingerprint { get; init; } = "";

    public int HeadSize => HiddenSize / NumAttentionHeads;

    /// <summary>DeBERTa's relative span: <c>max_relative_positions</c>, or <c>max_position_embeddings</c> when below 1.</summary>
    public int RelativeSpan => MaxRelativePositions < 1 ? MaxPositionEmbeddings : MaxRelativePositions;

    public static ModelArchitectureConfig Read(string configPath) => Parse(File.ReadAllText(configPath));

    /// <summary>Reads a <c>config.json</c>; throws <see cref="GraphBuildException"/> when it cannot describe an encoder we build.</summary>
    public static ModelArchitectureConfig Parse(string json)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException ex)
        {
            throw new GraphBuildException($"config.json is not valid JSON: {ex.Message}", ex);
        }

        using (document)
        {
            var c = document.RootElement;
            if (c.ValueKind != JsonValueKind.Object)
            {
                throw new GraphBuildException("config.json is not a JSON object.");
            }

            var modelType = NormaliseModelType(Str(c, "model_type"));
            var fingerprint = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(json)));
            var config = modelType switch
            {
                "distilbert" => new ModelArchitectureConfig
                {
                    ModelType = modelType,
                    HiddenSize = Int(c, "dim") ?? 768,
                    NumAttentionHeads = Int(c, "n_heads") ?? 12,
                    NumHiddenLayers = Int(c, "n_layers") ?? 6,
                    IntermediateSize = Int(c, "hidden_dim") ?? 3072,
                    HiddenAct = Str(c, "activation") ?? "gelu",

                    // modeling_distilbert.py builds every LayerNorm with eps=1e-12, whatever the config says.
                    LayerNormEps = 1e-12,
                    MaxPositionEmbeddings = Int(c, "max_position_embeddings") ?? 512,
                    PadTokenId = Int(c, "pad_token_id") ?? 0,
                    VocabSize = Int(c, "vocab_size") ?? 30522,
                    TypeVocabSize = 0,
                    Fingerprint = fingerprint,
                },
                "deberta" or "deberta-v2" => new ModelArchitectureConfig
                {
                    ModelType = modelType,
                    HiddenSize = Int(c, "hidden_size") ?? 768,
                    NumAttentionHeads = Int(c, "num_attention_heads") ?? 12,
                    NumHiddenLayers = Int(c, "num_hidden_layers") ?? 12,
                    IntermediateSize = Int(c, "intermediate_size") ?? 3072,
                    HiddenAct = Str(c, "hidden_act") ?? "gelu",
                    LayerNormEps = Double(c, "layer_norm_eps") ?? 1e-7,
                    MaxPositionEmbeddings = Int(c, "max_position_embeddings") ?? 512,
                    PadTokenId = Int(c, "pad_token_id") ?? 0,
                    VocabSize = Int(c, "vocab_size") ?? (modelType == "deberta" ? 50265 : 128100),
                    TypeVocabSize = Int(c, "type_vocab_size") ?? 0,
                    RelativeAttention = Bool(c, "relative_attention") ?? false,
                    MaxRelativePositions = Int(c, "max_relative_positions") ?? -1,
                    PositionBuckets = Int(c, "position_buckets") ?? -1,
                    PosAttType = PosAtt(c),
                    ShareAttKey = Bool(c, "share_att_key") ?? false,
                    NormRelEbd = (Str(c, "norm_rel_ebd") ?? "none").ToLowerInvariant(),
                    PositionBiasedInput = Bool(c, "position_biased_input") ?? true,
                    EmbeddingSize = Int(c, "embedding_size"),
                    TalkingHead = Bool(c, "talking_head") ?? false,
                    ConvKernelSize = Int(c, "conv_kernel_size") ?? 0,
                    Fingerprint = fingerprint,
                },
                _ => new ModelArchitectureConfig
                {
                    ModelType = modelType,
                    HiddenSize = Int(c, "hidden_size") ?? 768,
                    NumAttentionHeads = Int(c, "num_attention_heads") ?? 12,
                    NumHiddenLayers = Int(c, "num_hidden_layers") ?? 12,
                    IntermediateSize = Int(c, "intermediate_size") ?? 3072,
                    HiddenAct = Str(c, "hidden_act") ?? "gelu",
                    LayerNormEps = Double(c, "layer_norm_eps") ?? 1e-12,
                    MaxPositionEmbeddings = Int(c, "max_position_embeddings") ?? (modelType == "mpnet" ? 514 : 512),

                    // RoBERTa's family and MPNet pad with 1 (and derive positions from it); BERT with 0.
                    PadTokenId = Int(c, "pad_token_id") ?? (modelType == "bert" ? 0 : 1),
                    VocabSize = Int(c, "vocab_size") ?? modelType switch
                    {
                        "bert" => 30522,
                        "mpnet" => 30527,
                        "xlm-roberta" => 250002,
                        "camembert" => 32005,
                        _ => 50265,
                    },
                    TypeVocabSize = modelType == "mpnet" ? 0 : Int(c, "type_vocab_size") ?? 2,
                    PositionEmbeddingType = Str(c, "position_embedding_type") ?? "absolute",
                    Fingerprint = fingerprint,
                },
            };
            config.Validate();
            return config;
        }
    }

    private void Validate()
    {
        if (HiddenSize <= 0 || NumAttentionHeads <= 0 || HiddenSize % NumAttentionHeads != 0)
        {
            throw new GraphBuildException($"{ModelType}: hidden size {HiddenSize} does not split into {NumAttentionHeads} attention heads.");
        }

        if (NumHiddenLayers < 0 || IntermediateSize <= 0 || MaxPositionEmbeddings <= 0 || VocabSize <= 0)
        {
            throw new GraphBuildException(
                $"{ModelType}: the config gives {NumHiddenLayers} layers, intermediate size {IntermediateSize}, {MaxPositionEmbeddings} positions, {VocabSize} words.");
        }

        if (HiddenAct != "gelu")
        {
            throw new GraphBuildException(
                $"{ModelType}: activation '{HiddenAct}' is not built natively; only 'gelu' (the exact erf GELU) is.");
        }

        if (PositionEmbeddingType != "absolute")
        {
            throw new GraphBuildException(
                $"{ModelType}: position_embedding_type '{PositionEmbeddingType}' is not built natively; only 'absolute' is.");
        }

        if (ModelType is "deberta" or "deberta-v2")
        {
            if (TalkingHead || ConvKernelSize > 0 || (EmbeddingSize is { } e && e != HiddenSize))
            {
                throw new GraphBuildException(
                    $"{ModelType}: talking heads, the convolution layer (conv_kernel_size) and an embedding size other than the hidden size are not built natively.");
            }

            if (PosAttType.Any(p => p is not ("c2p" or "p2c")))
            {
                throw new GraphBuildException(
                    $"{ModelType}: pos_att_type [{string.Join(", ", PosAttType)}] is not built natively; only c2p and p2c are.");
            }

            if (NormRelEbd is not ("none" or "layer_norm"))
            {
                throw new GraphBuildException($"{ModelType}: norm_rel_ebd '{NormRelEbd}' is not built natively; only 'none' and 'layer_norm' are.");
            }
        }
    }

    private static string NormaliseModelType(string? modelType)
    {
        if (string.IsNullOrWhiteSpace(modelType))
        {
            throw new GraphBuildException($"config.json has no model_type; the native builder supports {string.Join(", ", SupportedModelTypes)}.");
        }

        var normalised = modelType.Trim().ToLowerInvariant().Replace('_', '-');
        return SupportedModelTypes.Contains(normalised)
            ? normalised
            : throw new GraphBuildException(
                $"model_type '{modelType}' cannot be built natively; the supported model types are {string.Join(", ", SupportedModelTypes)}.");
    }

    private static List<string> PosAtt(JsonElement c)
    {
        if (!c.TryGetProperty("pos_att_type", out var v))
        {
            return [];
        }

        IEnumerable<string> items = v.ValueKind switch
        {
            JsonValueKind.String => v.GetString()!.Split('|'),
            JsonValueKind.Array => v.EnumerateArray().Where(e => e.ValueKind == JsonValueKind.String).Select(e => e.GetString()!),
            _ => [],
        };
        return [.. items.Select(s => s.Trim().ToLowerInvariant()).Where(s => s.Length > 0).Distinct()];
    }

    private static string? Str(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static int? Int(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var i) ? i : null;

    private static double? Double(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;

    private static bool? Bool(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : null;
}

/// <summary>A model the native graph builder cannot build: an unsupported architecture or setting, or weights that do not fit its config.</summary>
public sealed class GraphBuildException(string message, Exception? inner = null) : Exception(message, inner);
