using System.Text.RegularExpressions;

namespace OrleansGpu.Inference.Models.Hub;

/// <summary>
/// Which files of a repo a model needs: its settings (config, tokenizer, sentence-transformers modules) and one
/// weights format, the first of <see cref="WeightFiles.Candidates"/> the repo has (an ONNX export, else safetensors,
/// else PyTorch; sharded or not). TensorFlow, Flax, Rust, OpenVINO files and the other ONNX variants (quantised,
/// optimised) are never taken. A sentence-transformers module folder with weights (a <c>Dense</c> module's
/// <c>2_Dense/</c>) gives <see cref="ModuleWeights"/>: one file each, <c>model.safetensors</c> before
/// <c>pytorch_model.bin</c>, as sentence-transformers looks for them.
/// </summary>
public sealed partial record DownloadPlan(
    IReadOnlyList<string> Settings, WeightsFormat Format, string Weights, bool IsIndex, IReadOnlyList<string> ExternalData, IReadOnlyList<string> ModuleWeights)
{
    private static readonly HashSet<string> SettingsFiles = new(StringComparer.Ordinal)
    {
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "vocab.txt",
        "vocab.json",
        "merges.txt",
        "spm.model",
        "sentencepiece.bpe.model",
        "modules.json",
        "sentence_bert_config.json",
        "config_sentence_transformers.json",
    };

    /// <summary>The plan for a repo holding <paramref name="files"/>, or null when it has no weights we can load.</summary>
    public static DownloadPlan? For(IReadOnlyCollection<string> files)
    {
        var present = files.ToHashSet(StringComparer.Ordinal);
        foreach (var (format, path, isIndex) in WeightFiles.Candidates)
        {
            if (!present.Contains(path))
            {
                continue;
            }

            // An ONNX export over 2 GB keeps its weights beside the graph (optimum names the file model.onnx_data).
            IReadOnlyList<string> external = format == WeightsFormat.Onnx
                ? [.. new[] { path + "_data", path + ".data" }.Where(present.Contains)]
                : [];
            var settings = files.Where(f => SettingsFiles.Contains(f) || ModuleConfig().IsMatch(f)).Order(StringComparer.Ordinal).ToList();
            var moduleWeights = settings
                .Where(f => ModuleConfig().IsMatch(f))
                .Select(f => f[..f.IndexOf('/')])
                .Select(folder => DenseModuleConfig.WeightFileNames.Select(w => $"{folder}/{w}").FirstOrDefault(present.Contains))
                .OfType<string>()
                .ToList();
            return new DownloadPlan(settings, format, path, isIndex, external, moduleWeights);
        }

        return null;
    }

    /// <summary>A sentence-transformers module's settings, such as <c>1_Pooling/config.json</c>.</summary>
    [GeneratedRegex(@"^[0-9]+_[A-Za-z0-9_]+/config\.json$")]
    private static partial Regex ModuleConfig();
}
