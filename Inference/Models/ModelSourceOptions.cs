using OrleansGpu.Inference.BertScore;

namespace OrleansGpu.Inference.Models;

/// <summary>
/// Where models come from beyond the models folder: the user's Hugging Face cache (read in place) and the hub
/// (downloaded into that cache), with the variables Hugging Face's own tools read, and which models a request may
/// cause to be downloaded.
/// </summary>
public sealed record ModelSourceOptions
{
    public const string DefaultEndpoint = "https://huggingface.co";

    /// <summary>The hub (<c>HF_ENDPOINT</c>): the real hub, a mirror, or a local stand-in.</summary>
    public string HubEndpoint { get; init; } = DefaultEndpoint;

    /// <summary>The token sent to the hub's own host for gated and private repos (see <see cref="FindToken"/>).</summary>
    public string? Token { get; init; }

    /// <summary>The Hugging Face cache (<c>HF_HUB_CACHE</c>, else <c>$HF_HOME/hub</c>, else <c>~/.cache/huggingface/hub</c>).</summary>
    public string CacheDirectory { get; init; } = DefaultCacheDirectory(Environment.GetEnvironmentVariable);

    /// <summary>Never touch the network; serve what the folder and the cache hold (<c>HF_HUB_OFFLINE=1</c>).</summary>
    public bool Offline { get; init; }

    /// <summary>
    /// Glob patterns of the models a request may cause to be downloaded (<c>MODEL_ALLOW</c>, comma-separated, such as
    /// <c>sentence-transformers/*,BAAI/*</c>; <c>*</c> allows any), on top of <see cref="DefaultModels"/> and bert_score's
    /// model table.
    /// </summary>
    public IReadOnlyList<string> Allow { get; init; } = [];

    /// <summary>The configured default models (<c>MODEL_EMBED</c>, <c>MODEL_BERTSCORE</c>): always allowed.</summary>
    public IReadOnlyList<string> DefaultModels { get; init; } = [];

    /// <summary>How long the hub may take to answer a request (not a whole download, which may take minutes).</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a name the hub does not know is remembered as unknown (a bounded list; see <see cref="ModelSources"/>).</summary>
    public TimeSpan UnknownNameMemory { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>The Hugging Face cache as huggingface_hub finds it from the environment: <c>HF_HUB_CACHE</c>, else <c>$HF_HOME/hub</c>.</summary>
    public static string DefaultCacheDirectory(Func<string, string?> variable) =>
        NonEmpty(variable("HF_HUB_CACHE")) ?? Path.Combine(HuggingFaceHome(variable), "hub");

    /// <summary><c>HF_HOME</c>, else <c>$XDG_CACHE_HOME/huggingface</c>, else <c>~/.cache/huggingface</c>.</summary>
    public static string HuggingFaceHome(Func<string, string?> variable) =>
        NonEmpty(variable("HF_HOME"))
        ?? Path.Combine(
            NonEmpty(variable("XDG_CACHE_HOME")) ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"),
            "huggingface");

    /// <summary>
    /// The token as huggingface_hub finds it: <c>HF_TOKEN</c>, the older <c>HUGGING_FACE_HUB_TOKEN</c>, else the file
    /// <c>HF_TOKEN_PATH</c> (default <c>$HF_HOME/token</c>, where <c>huggingface-cli login</c> writes it).
    /// </summary>
    public static string? FindToken(Func<string, string?> variable)
    {
        if ((NonEmpty(variable("HF_TOKEN")) ?? NonEmpty(variable("HUGGING_FACE_HUB_TOKEN"))) is { } token)
        {
            return token;
        }

        var path = NonEmpty(variable("HF_TOKEN_PATH")) ?? Path.Combine(HuggingFaceHome(variable), "token");
        try
        {
            return File.Exists(path) ? NonEmpty(File.ReadAllText(path)) : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// Reads the settings from environment-style variables (<paramref name="variable"/> answers null when unset), with
    /// the meaning huggingface_hub gives them. <see cref="EndpointError"/> checks the endpoint.
    /// </summary>
    public static ModelSourceOptions FromVariables(Func<string, string?> variable)
    {
        var endpoint = NonEmpty(variable("HF_ENDPOINT")) ?? DefaultEndpoint;
        return new ModelSourceOptions
        {
            HubEndpoint = endpoint.TrimEnd('/'),
            Token = FindToken(variable),
            CacheDirectory = DefaultCacheDirectory(variable),
            Offline = IsTrue(variable("HF_HUB_OFFLINE")),
            Allow = NonEmpty(variable("MODEL_ALLOW")) is { } allow
                ? [.. allow.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)]
                : [],
        };
    }

    /// <summary>What is wrong with <paramref name="endpoint"/> as <c>HF_ENDPOINT</c>, or null when it is an http(s) URL.</summary>
    public static string? EndpointError(string endpoint) =>
        Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https"
            ? null
            : $"HF_ENDPOINT must be an http(s) URL; got '{endpoint}'.";

    /// <summary>Whether a request may cause <paramref name="repo"/> to be downloaded.</summary>
    public bool Allows(string repo) =>
        DefaultModels.Any(d => SameModel(d, repo))
        || BertScoreDefaults.IsKnownModel(repo)
        || Allow.Any(pattern => Glob.Matches(pattern, repo));

    /// <summary>A bare default (<c>all-MiniLM-L6-v2</c>) allows the repo it resolves to as well.</summary>
    private static bool SameModel(string configured, string repo)
    {
        if (!ModelReference.TryParse(configured, out var reference))
        {
            return false;
        }

        return ModelStore.Candidates(reference).Any(c => string.Equals(c.Repo, repo, StringComparison.OrdinalIgnoreCase));
    }

    // huggingface_hub's reading of a boolean variable.
    private static bool IsTrue(string? value) => value?.Trim().ToUpperInvariant() is "1" or "ON" or "YES" or "TRUE";

    private static string? NonEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();
}

/// <summary>Glob patterns over model names: <c>*</c> is any run of characters (a '/' included), <c>?</c> one character; case is ignored, as the hub ignores it.</summary>
public static class Glob
{
    public static bool Matches(string pattern, string text) => Match(pattern.AsSpan(), text.AsSpan());

    private static bool Match(ReadOnlySpan<char> pattern, ReadOnlySpan<char> text)
    {
        // Iterative matching with one backtrack point: linear in practice, never exponential.
        int p = 0, t = 0, star = -1, mark = 0;
        while (t < text.Length)
        {
            if (p < pattern.Length && (pattern[p] == '?' || char.ToLowerInvariant(pattern[p]) == char.ToLowerInvariant(text[t])))
            {
                p++;
                t++;
            }
            else if (p < pattern.Length && pattern[p] == '*')
            {
                star = p++;
                mark = t;
            }
            else if (star >= 0)
            {
                p = star + 1;
                t = ++mark;
            }
            else
            {
                return false;
            }
        }

        while (p < pattern.Length && pattern[p] == '*')
        {
            p++;
        }

        return p == pattern.Length;
    }
}
