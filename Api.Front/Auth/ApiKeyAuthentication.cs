using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;
using OrleansGpu.Grains.Security;

namespace OrleansGpu.Api.Auth;

/// <summary>
/// The API keys the front accepts: <c>API_KEY</c> (the seed's variable; or the file <c>API_KEY_FILE</c> names) and/or
/// <c>Api:Keys</c> (comma-separated).
/// </summary>
public sealed class ApiKeys
{
    private readonly byte[][] _digests;

    public ApiKeys(IEnumerable<string> keys) =>
        _digests = [.. keys.Where(k => !string.IsNullOrWhiteSpace(k)).Select(k => SHA256.HashData(Encoding.UTF8.GetBytes(k.Trim())))];

    /// <summary>False when no key is configured: every route is open (and the front listens on loopback only).</summary>
    public bool Required => _digests.Length > 0;

    public static ApiKeys FromConfiguration(IConfiguration configuration)
    {
        var keys = new List<string>();
        if (SecretFiles.Read(configuration, "API_KEY") is { Length: > 0 } single)
        {
            keys.Add(single);
        }

        if (configuration["Api:Keys"] is { Length: > 0 } list)
        {
            keys.AddRange(list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        }

        return new ApiKeys(keys);
    }

    /// <summary>
    /// Compares digests in constant time, against every key without an early exit, so neither the key's content nor
    /// which key matched shows in the timing.
    /// </summary>
    public bool Matches(string presented)
    {
        var digest = SHA256.HashData(Encoding.UTF8.GetBytes(presented));
        var match = false;
        foreach (var known in _digests)
        {
            match |= CryptographicOperations.FixedTimeEquals(digest, known);
        }

        return match;
    }
}

/// <summary>
/// Authenticates a request by <c>X-API-Key</c> or <c>Authorization: Bearer</c>. Every endpoint requires an
/// authenticated caller (deny by default); only <c>/health</c> is anonymous. With no key configured every caller
/// is authenticated.
/// </summary>
public sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    ApiKeys keys) : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "ApiKey";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (!keys.Required)
        {
            return Task.FromResult(Success("anonymous"));
        }

        var presented = PresentedKey(Request);
        if (presented is null)
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }

        if (!keys.Matches(presented))
        {
            return Task.FromResult(AuthenticateResult.Fail("The API key is not valid."));
        }

        if (IsDashboard(Request) && Request.Query.ContainsKey(DashboardQuery))
        {
            // A browser cannot add headers to the dashboard's own requests: remember the key in a cookie that only
            // the dashboard's paths receive.
            Response.Cookies.Append(DashboardCookie, presented, new CookieOptions
            {
                HttpOnly = true,
                SameSite = SameSiteMode.Strict,
                Secure = Request.IsHttps,
                Path = DashboardPath,
            });
        }

        return Task.FromResult(Success("api-key"));
    }

    /// <summary>Where the Orleans dashboard is mapped.</summary>
    public const string DashboardPath = "/dashboard";

    /// <summary>Open the dashboard once as <c>/dashboard?api_key=KEY</c>; the cookie carries the key from then on.</summary>
    public const string DashboardQuery = "api_key";

    private const string DashboardCookie = "orleansgpu_dashboard_key";

    private static bool IsDashboard(HttpRequest request) => request.Path.StartsWithSegments(DashboardPath);

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.StatusCode = StatusCodes.Status401Unauthorized;
        Response.Headers.WWWAuthenticate = "Bearer, ApiKey header=\"X-API-Key\"";
        await Http.ApiErrors.WriteAsync(Context, StatusCodes.Status401Unauthorized, "unauthorized",
            PresentedKey(Request) is null
                ? "An API key is required: send it as X-API-Key or Authorization: Bearer."
                : "The API key is not valid.");
    }

    private static string? PresentedKey(HttpRequest request)
    {
        if (request.Headers.TryGetValue("X-API-Key", out var header) && header.ToString() is { Length: > 0 } key)
        {
            return key;
        }

        var authorization = request.Headers.Authorization.ToString();
        if (authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return authorization["Bearer ".Length..].Trim();
        }

        if (IsDashboard(request))
        {
            if (request.Query.TryGetValue(DashboardQuery, out var query) && query.ToString() is { Length: > 0 } fromQuery)
            {
                return fromQuery;
            }

            if (request.Cookies.TryGetValue(DashboardCookie, out var cookie) && cookie is { Length: > 0 })
            {
                return cookie;
            }
        }

        return null;
    }

    private AuthenticateResult Success(string name) =>
        AuthenticateResult.Success(new AuthenticationTicket(
            new ClaimsPrincipal(new ClaimsIdentity([new Claim(ClaimTypes.Name, name)], SchemeName)), SchemeName));
}
