using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;
using OrleansGpu.Api.Http;

namespace OrleansGpu.Api.Auth;

/// <summary>
/// Authenticates a request by <c>X-API-Key</c> or <c>Authorization: Bearer</c>, and the dashboard's requests by its
/// session cookie (see <see cref="DashboardLogin"/>). Every endpoint requires an authenticated caller (deny by
/// default); only <c>/health</c> is anonymous. With no key configured every caller is authenticated.
/// </summary>
public sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    ApiKeys keys,
    TimeProvider clock,
    IProblemDetailsService problems) : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "ApiKey";

    /// <summary>Where the Orleans dashboard is mapped.</summary>
    public const string DashboardPath = "/dashboard";

    /// <summary>The cookie holding a dashboard session (an expiry and its HMAC), sent back to the dashboard's paths only.</summary>
    public const string DashboardCookie = "orleansgpu_dashboard";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (!keys.Required)
        {
            return Task.FromResult(Success("anonymous"));
        }

        if (PresentedKey(Request) is { } presented)
        {
            return Task.FromResult(keys.Matches(presented) ? Success("api-key") : AuthenticateResult.Fail("The API key is not valid."));
        }

        if (Request.Path.StartsWithSegments(DashboardPath) && Request.Cookies.TryGetValue(DashboardCookie, out var session) && session is { Length: > 0 })
        {
            return Task.FromResult(keys.ValidSession(session, clock.GetUtcNow())
                ? Success("dashboard-session")
                : AuthenticateResult.Fail("The dashboard session has expired."));
        }

        return Task.FromResult(AuthenticateResult.NoResult());
    }

    protected override Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.Headers.WWWAuthenticate = "Bearer, ApiKey header=\"X-API-Key\"";
        var message = PresentedKey(Request) is not null
            ? "The API key is not valid."
            : Request.Path.StartsWithSegments(DashboardPath)
                ? $"An API key is required: open {DashboardPath}/?{DashboardLogin.QueryName}=KEY once in the browser."
                : "An API key is required: send it as X-API-Key or Authorization: Bearer.";
        return ApiErrorWriter.WriteAsync(problems, Context, StatusCodes.Status401Unauthorized, ApiErrorCodes.Unauthorized, message);
    }

    internal static string? PresentedKey(HttpRequest request)
    {
        if (request.Headers.TryGetValue("X-API-Key", out var header) && header.ToString() is { Length: > 0 } key)
        {
            return key;
        }

        var authorization = request.Headers.Authorization.ToString();
        return authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? authorization["Bearer ".Length..].Trim() : null;
    }

    private AuthenticateResult Success(string name) =>
        AuthenticateResult.Success(new AuthenticationTicket(
            new ClaimsPrincipal(new ClaimsIdentity([new Claim(ClaimTypes.Name, name)], SchemeName)), SchemeName));
}

/// <summary>
/// The dashboard's login. A browser cannot add headers to the dashboard's own requests, so the key is given once as
/// <c>/dashboard/?api_key=KEY</c>: this answers with a session cookie (an expiry and its HMAC under the key, never the
/// key) and a redirect to the same page without the key, so the key stays out of the address bar, the history,
/// <c>Location</c> headers and every later request. A wrong key is a 401 that does not echo it.
/// </summary>
public sealed class DashboardLogin(RequestDelegate next, ApiKeys keys, TimeProvider clock, IProblemDetailsService problems)
{
    public const string QueryName = "api_key";

    public async Task InvokeAsync(HttpContext context)
    {
        var request = context.Request;
        if (!request.Path.StartsWithSegments(ApiKeyAuthenticationHandler.DashboardPath) || !request.Query.TryGetValue(QueryName, out var presented))
        {
            await next(context);
            return;
        }

        if (keys.Required && !keys.Matches(presented.ToString()))
        {
            await ApiErrorWriter.WriteAsync(problems, context, StatusCodes.Status401Unauthorized, ApiErrorCodes.Unauthorized, "The API key is not valid.");
            return;
        }

        if (keys.Required)
        {
            context.Response.Cookies.Append(ApiKeyAuthenticationHandler.DashboardCookie, keys.IssueSession(presented.ToString(), clock.GetUtcNow()), new CookieOptions
            {
                HttpOnly = true,
                SameSite = SameSiteMode.Strict,
                Secure = request.IsHttps,
                Path = ApiKeyAuthenticationHandler.DashboardPath,
                MaxAge = ApiKeys.SessionLifetime,
            });
        }

        // The same page without the key; other query parameters are the dashboard's and are kept.
        var rest = string.Join('&', request.Query.Where(q => q.Key != QueryName)
            .SelectMany(q => q.Value.Select(v => $"{Uri.EscapeDataString(q.Key)}={Uri.EscapeDataString(v ?? "")}")));
        var path = request.Path.Value == ApiKeyAuthenticationHandler.DashboardPath ? ApiKeyAuthenticationHandler.DashboardPath + "/" : request.Path.Value;
        context.Response.StatusCode = StatusCodes.Status303SeeOther;
        context.Response.Headers.Location = $"{request.PathBase}{path}{(rest.Length > 0 ? "?" + rest : "")}";
        context.Response.Headers.CacheControl = "no-store";
    }
}
