using OrleansGpu.Inference.Graphs;
using OrleansGpu.Inference.Tokenization;

namespace OrleansGpu.Inference.Models;

/// <summary>
/// Whether this build can serve a model, told from its small files before its weights are downloaded or read: a
/// tokenizer we read, and, for a model without an ONNX export, an architecture the graph builder builds. What it
/// refuses is a client error (<see cref="ModelNotSupportedException"/>, <see cref="InvalidModelException"/>) whose
/// message names what is missing and what is supported; no message shows a path.
/// </summary>
public static class ModelSupport
{
    /// <summary>
    /// From a hub repo's file list alone, before anything is downloaded: a repo whose only tokenizer is SentencePiece,
    /// or that has no tokenizer at all, is refused here rather than after gigabytes of weights.
    /// </summary>
    public static void CheckFileList(string model, IReadOnlyCollection<string> files)
    {
        if (TokenizerFiles.UnsupportedByName(files) is { } reason)
        {
            throw new ModelNotSupportedException(model, reason);
        }

        if (!TokenizerFiles.HasReadable(files))
        {
            throw new InvalidModelException(model, "its repo has no tokenizer: tokenizer.json, vocab.txt, or vocab.json + merges.txt.");
        }
    }

    /// <summary>
    /// From the settings in <paramref name="directory"/> (a model folder, or a snapshot holding the settings so far):
    /// the tokenizer (names, then the model <c>tokenizer.json</c> declares), and for weights in <paramref name="format"/>
    /// other than ONNX, the architecture in <c>config.json</c> (see <see cref="Architecture"/>); and the sentence-transformers
    /// <c>Dense</c> modules' configs (an activation this service does not apply, a malformed config), whose weights are
    /// then fetched with the model's.
    /// </summary>
    public static void CheckSettings(string model, string directory, WeightsFormat format)
    {
        if (TokenizerFiles.Unsupported(directory) is { } reason)
        {
            throw new ModelNotSupportedException(model, reason);
        }

        DenseModules(model, directory);

        if (format != WeightsFormat.Onnx)
        {
            Architecture(model, directory);
        }
    }

    /// <summary>
    /// The architecture the graph builder builds for the model in <paramref name="directory"/> (its <c>config.json</c>);
    /// a <see cref="ModelNotSupportedException"/> naming what is not built and which architectures are, or an
    /// <see cref="InvalidModelException"/> when there is no readable <c>config.json</c>.
    /// </summary>
    public static ModelArchitectureConfig Architecture(string model, string directory)
    {
        var path = Path.Combine(directory, "config.json");
        if (!File.Exists(path))
        {
            throw new InvalidModelException(model, "it has no ONNX export and no config.json, which building its graph from the checkpoint needs.");
        }

        try
        {
            return ModelArchitectureConfig.Read(path);
        }
        catch (GraphBuildException ex) when (ex.InnerException is System.Text.Json.JsonException)
        {
            throw new InvalidModelException(model, $"its config.json cannot be read: {ex.Message}");
        }
        catch (GraphBuildException ex)
        {
            throw Unsupported(model, ex);
        }
    }

    /// <summary>
    /// The sentence-transformers modules of the model in <paramref name="directory"/>, refused with a
    /// <see cref="ModelNotSupportedException"/> naming the module when a <c>Dense</c> module cannot be applied.
    /// </summary>
    public static SentenceTransformersConfig DenseModules(string model, string directory)
    {
        SentenceTransformersConfig modules;
        try
        {
            modules = SentenceTransformersConfig.Read(directory);
        }
        catch (Exception ex) when (ex is System.Text.Json.JsonException or InvalidDataException)
        {
            throw new InvalidModelException(model, $"its sentence-transformers settings cannot be read ({ex.Message.Split('\n')[0]}).");
        }

        return modules.DenseProblems.Count > 0
            ? throw new ModelNotSupportedException(model, string.Join(" ", modules.DenseProblems))
            : modules;
    }

    /// <summary>The client error for a model the graph builder refuses: what is not built, and what is.</summary>
    public static ModelNotSupportedException Unsupported(string model, GraphBuildException error) => new(
        model,
        $"it has no ONNX export, and its graph cannot be built from its checkpoint: {error.Message} "
        + $"The graph builder supports the model types {string.Join(", ", ModelArchitectureConfig.SupportedModelTypes)} "
        + "(BERT, RoBERTa / XLM-RoBERTa / CamemBERT, DistilBERT, DeBERTa v1 and v2/v3, MPNet); an ONNX export of the model "
        + "(optimum-cli export onnx) in the models folder is served instead.");
}
