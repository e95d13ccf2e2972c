using System.Text.Json;
using OrleansGpu.Inference.Embeddings;

namespace OrleansGpu.Inference.Models;

/// <summary>
/// How sentence-transformers turns this model's hidden states into one vector per text, read from the repo's
/// <c>modules.json</c> and its Pooling module's <c>config.json</c> (usually <c>1_Pooling/config.json</c>).
/// <c>max_seq_length</c> (<c>sentence_bert_config.json</c>) is read by <see cref="ModelConfig"/>.
/// A folder without <c>modules.json</c> is what sentence-transformers makes of a plain Hugging Face model:
/// mean pooling, no normalisation.
/// </summary>
public sealed record SentenceTransformersConfig
{
    /// <summary>What sentence-transformers does with a model that has no <c>modules.json</c>.</summary>
    public static SentenceTransformersConfig Plain { get; } = new();

    public PoolingModes Pooling { get; init; } = PoolingModes.Mean;

    /// <summary>Whether the modules end with <c>Normalize</c> (L2 normalisation of each vector).</summary>
    public bool Normalize { get; init; }

    /// <summary>The <c>Dense</c> modules after the Pooling module, in the order they apply (before Normalize).</summary>
    public IReadOnlyList<DenseModuleConfig> Dense { get; init; } = [];

    /// <summary>
    /// What is wrong with the model's <c>Dense</c> modules (an activation this service does not apply, a malformed
    /// config, sizes that do not chain), each naming the module; such a model is refused before its weights are fetched.
    /// </summary>
    public IReadOnlyList<string> DenseProblems { get; init; } = [];

    /// <summary>Whether the folder has a <c>modules.json</c>.</summary>
    public bool HasModules { get; init; }

    /// <summary>
    /// Modules we do not apply (LayerNorm, WordWeights, ...), or an order we do not apply them in. Embeddings of such a model would differ from
    /// sentence-transformers', so it is refused for embeddings rather than served with other numbers.
    /// </summary>
    public IReadOnlyList<string> UnsupportedModules { get; init; } = [];

    public static SentenceTransformersConfig Read(string directory)
    {
        var modulesPath = Path.Combine(directory, "modules.json");
        if (!File.Exists(modulesPath))
        {
            return Plain;
        }

        using var modules = JsonDocument.Parse(File.ReadAllBytes(modulesPath));
        if (modules.RootElement.ValueKind != JsonValueKind.Array)
        {
            throw new InvalidDataException("modules.json is not a list of modules.");
        }

        var config = new SentenceTransformersConfig { HasModules = true };
        var unsupported = new List<string>();
        var dense = new List<DenseModuleConfig>();
        var denseProblems = new List<string>();
        var pooled = false;
        foreach (var module in modules.RootElement.EnumerateArray())
        {
            var type = module.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : "";
            var path = module.TryGetProperty("path", out var p) && p.ValueKind == JsonValueKind.String ? p.GetString()! : "";
            switch (type[(type.LastIndexOf('.') + 1)..])
            {
                case "Transformer":
                    break;
                case "Pooling":
                    config = config with { Pooling = ReadPooling(Path.Combine(directory, path, "config.json")) };
                    pooled = true;
                    break;
                case "Normalize":
                    config = config with { Normalize = true };
                    break;
                case "Dense":
                    if (config.Normalize || !pooled)
                    {
                        // sentence-transformers would apply it to a normalised vector, or to token embeddings.
                        unsupported.Add($"{type} ({path}) {(pooled ? "after Normalize" : "before Pooling")}");
                    }

                    try
                    {
                        var read = DenseModuleConfig.Read(directory, path);
                        if (dense.Count > 0 && dense[^1].OutFeatures != read.InFeatures)
                        {
                            throw new DenseConfigException(path, $"takes {read.InFeatures} features where the Dense module before it ({dense[^1].Path}) gives {dense[^1].OutFeatures}");
                        }

                        dense.Add(read);
                    }
                    catch (DenseConfigException ex)
                    {
                        denseProblems.Add(ex.Message);
                    }

                    break;
                default:
                    unsupported.Add(type);
                    break;
            }
        }

        // Without a Pooling module sentence-transformers would return token embeddings, not one vector per text.
        if (!pooled)
        {
            unsupported.Add("(no Pooling module)");
        }

        return config with { UnsupportedModules = unsupported, Dense = dense, DenseProblems = denseProblems };
    }

    /// <summary>
    /// The Pooling module's modes: its <c>pooling_mode</c> string when set (it overrides the flags, as in
    /// sentence-transformers), else its <c>pooling_mode_*</c> flags, with mean on unless the file turns it off.
    /// </summary>
    internal static PoolingModes ReadPooling(string configPath)
    {
        if (!File.Exists(configPath))
        {
            return PoolingModes.Mean;
        }

        using var doc = JsonDocument.Parse(File.ReadAllBytes(configPath));
        var c = doc.RootElement;
        if (c.TryGetProperty("pooling_mode", out var named) && named.ValueKind == JsonValueKind.String)
        {
            return named.GetString()!.ToLowerInvariant() switch
            {
                "cls" => PoolingModes.Cls,
                "max" => PoolingModes.Max,
                "mean" => PoolingModes.Mean,
                "mean_sqrt_len_tokens" => PoolingModes.MeanSqrtLen,
                "weightedmean" => PoolingModes.WeightedMean,
                "lasttoken" => PoolingModes.LastToken,
                var other => throw new InvalidDataException($"The Pooling module's pooling_mode '{other}' is not one sentence-transformers knows."),
            };
        }

        bool Flag(string name, bool fallback) =>
            c.TryGetProperty(name, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : fallback;

        var modes = PoolingModes.None;
        modes |= Flag("pooling_mode_cls_token", false) ? PoolingModes.Cls : 0;
        modes |= Flag("pooling_mode_max_tokens", false) ? PoolingModes.Max : 0;
        modes |= Flag("pooling_mode_mean_tokens", true) ? PoolingModes.Mean : 0;
        modes |= Flag("pooling_mode_mean_sqrt_len_tokens", false) ? PoolingModes.MeanSqrtLen : 0;
        modes |= Flag("pooling_mode_weightedmean_tokens", false) ? PoolingModes.WeightedMean : 0;
        modes |= Flag("pooling_mode_lasttoken", false) ? PoolingModes.LastToken : 0;
        return modes == PoolingModes.None
            ? throw new InvalidDataException("The Pooling module turns every pooling mode off.")
            : modes;
    }
}
