using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using OrleansGpu.Api.Hosting;
using OrleansGpu.Grains.Security;

namespace OrleansGpu.Api.Auth;

/// <summary>
/// Who may call the front: the key(s) of <c>API_KEY</c> (the seed's variable, or the file <c>API_KEY_FILE</c> names) and <c>Api:Keys</c> (comma-separated),
/// and whether a front without a key may serve beyond loopback (<c>API_ALLOW_ANONYMOUS_REMOTE</c>).
/// </summary>
public sealed class ApiKeyOptions
{
    public List<string> Keys { get; } = [];

    public bool AllowAnonymousRemote { get; set; }

    internal List<string> Problems { get; } = [];
}

internal sealed class ApiKeyOptionsSetup(IConfiguration configuration) : IConfigureOptions<ApiKeyOptions>, IValidateOptions<ApiKeyOptions>
{
    public void Configure(ApiKeyOptions options)
    {
        var settings = new Settings(configuration, options.Problems);
        try
        {
            if (SecretFiles.Read(configuration, "API_KEY") is { } single && !string.IsNullOrWhiteSpace(single))
            {
                options.Keys.Add(single.Trim());
            }
        }
        catch (ArgumentException ex)
        {
            options.Problems.Add(ex.Message);
        }

        if (configuration["Api:Keys"] is { } list)
        {
            options.Keys.AddRange(list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        }

        options.AllowAnonymousRemote = settings.Bool("API_ALLOW_ANONYMOUS_REMOTE", "Api:AllowAnonymousRemote") ?? options.AllowAnonymousRemote;
    }

    public ValidateOptionsResult Validate(string? name, ApiKeyOptions options)
    {
        var problems = new List<string>(options.Problems);

        // A key travels in a header: anything a header cannot carry would never match.
        if (options.Keys.Any(k => k.Any(c => c is < '!' or > '~')))
        {
            problems.Add("API_KEY (Api:Keys) may hold printable ASCII only, without spaces: a key is sent in an HTTP header.");
        }

        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }

    /// <summary>Whether a key is configured, read before the host is built (it decides the default listen address).</summary>
    public static bool KeyConfigured(IConfiguration configuration) =>
        !string.IsNullOrWhiteSpace(configuration["API_KEY"])
        || !string.IsNullOrWhiteSpace(configuration["API_KEY" + SecretFiles.FileSuffix])
        || !string.IsNullOrWhiteSpace(configuration["Api:Keys"]?.Replace(",", "", StringComparison.Ordinal));
}

/// <summary>
/// Checks keys, and issues and checks the dashboard's session cookies. Only SHA-256 digests of the keys are kept;
/// comparisons run in constant time against every key, so neither a key's content nor which key matched shows in the
/// timing.
/// </summary>
public sealed class ApiKeys(IOptions<ApiKeyOptions> options)
{
    private const string SessionPurpose = "orleansgpu dashboard session v1|";

    /// <summary>How long a dashboard session lasts before the key is asked for again.</summary>
    public static readonly TimeSpan SessionLifetime = TimeSpan.FromHours(12);

    private readonly byte[][] _digests = [.. options.Value.Keys.Select(k => SHA256.HashData(Encoding.UTF8.GetBytes(k)))];

    /// <summary>False when no key is configured: every route is open (and the front serves loopback only).</summary>
    public bool Required => _digests.Length > 0;

    public bool AllowAnonymousRemote => options.Value.AllowAnonymousRemote;

    /// <summary>Without a key and without the operator's opt-out, the front answers loopback callers only.</summary>
    public bool LoopbackOnly => !Required && !AllowAnonymousRemote;

    public bool Matches(string presented) => MatchingDigest(SHA256.HashData(Encoding.UTF8.GetBytes(presented))) is not null;

    /// <summary>
    /// A dashboard session for a valid key: its expiry and an HMAC of it under the key, never the key itself, so a
    /// cookie that leaks gives neither the key nor access beyond the dashboard and its lifetime.
    /// </summary>
    public string IssueSession(string key, DateTimeOffset now)
    {
        var expires = (now + SessionLifetime).ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
        return $"{expires}.{Sign(SHA256.HashData(Encoding.UTF8.GetBytes(key)), expires)}";
    }

    public bool ValidSession(string session, DateTimeOffset now)
    {
        var dot = session.IndexOf('.', StringComparison.Ordinal);
        if (dot <= 0 || !long.TryParse(session.AsSpan(0, dot), NumberStyles.None, CultureInfo.InvariantCulture, out var expires)
            || DateTimeOffset.FromUnixTimeSeconds(Math.Min(expires, 253402300799)) < now)
        {
            return false;
        }

        var expiresText = session[..dot];
        var presented = Encoding.ASCII.GetBytes(session[(dot + 1)..]);
        var match = false;
        foreach (var digest in _digests)
        {
            var expected = Encoding.ASCII.GetBytes(Sign(digest, expiresText));
            match |= presented.Length == expected.Length && CryptographicOperations.FixedTimeEquals(presented, expected);
        }

        return match;
    }

    private static string Sign(byte[] keyDigest, string expires) =>
        Convert.ToBase64String(HMACSHA256.HashData(keyDigest, Encoding.ASCII.GetBytes(SessionPurpose + expires)))
            .TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private byte[]? MatchingDigest(byte[] digest)
    {
        byte[]? found = null;
        foreach (var known in _digests)
        {
            if (CryptographicOperations.FixedTimeEquals(digest, known))
            {
                found = known;
            }
        }

        return found;
    }
}
