using System.Net;
using Microsoft.Net.Http.Headers;
using OrleansGpu.Api.Auth;

namespace OrleansGpu.Api.Http;

/// <summary>
/// What a front without a key adds to protect the machine it runs on. A web page the user visits can reach a
/// loopback service: through DNS rebinding (its own name resolving to 127.0.0.1, so the <c>Host</c> header is not a
/// loopback name) and through "simple" cross-site POSTs, which cannot carry <c>Content-Type: application/json</c>.
/// So: a <c>Host</c> that is not a loopback name is a 400, a POST whose body is not declared JSON is a 415, and a
/// connection that did not arrive on a loopback address is refused (in case Kestrel was bound wider meanwhile).
/// With a key none of this applies: a browser cannot add the key's header to a cross-site request.
/// </summary>
public sealed class LocalOnlyGuard(RequestDelegate next, ApiKeys keys, IProblemDetailsService problems)
{
    public Task InvokeAsync(HttpContext context)
    {
        if (keys.Required)
        {
            return next(context);
        }

        var request = context.Request;
        if (keys.LoopbackOnly)
        {
            if (context.Connection.LocalIpAddress is { } local && !IPAddress.IsLoopback(local))
            {
                context.Abort();
                return Task.CompletedTask;
            }

            if (!IsLoopbackName(request.Host.Host))
            {
                return ApiErrorWriter.WriteAsync(problems, context, StatusCodes.Status400BadRequest, ApiErrorCodes.HostNotAllowed,
                    "Without an API key this front answers requests addressed to localhost, 127.0.0.1 or [::1] only. Set API_KEY to serve other names.");
            }
        }

        if (HttpMethods.IsPost(request.Method) && !IsJson(request.ContentType))
        {
            return ApiErrorWriter.WriteAsync(problems, context, StatusCodes.Status415UnsupportedMediaType, ApiErrorCodes.UnsupportedMediaType,
                "Send the body as JSON, with Content-Type: application/json.");
        }

        return next(context);
    }

    /// <summary>localhost, a name under .localhost (RFC 6761 keeps them on loopback), or a loopback address; no Host at all (HTTP/1.0) passes.</summary>
    internal static bool IsLoopbackName(string host)
    {
        if (host.Length == 0)
        {
            return true;
        }

        host = host.TrimEnd('.').ToLowerInvariant();
        return host == "localhost" || host.EndsWith(".localhost", StringComparison.Ordinal)
            || (IPAddress.TryParse(host.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip));
    }

    internal static bool IsJson(string? contentType)
    {
        if (!MediaTypeHeaderValue.TryParse(contentType, out var media) || media.MediaType.Value is not { } type)
        {
            return false;
        }

        var json = type.Equals("application/json", StringComparison.OrdinalIgnoreCase)
            || type.Equals("text/json", StringComparison.OrdinalIgnoreCase)
            || (type.StartsWith("application/", StringComparison.OrdinalIgnoreCase) && type.EndsWith("+json", StringComparison.OrdinalIgnoreCase));
        return json && (media.Charset.Value is null || media.Charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase));
    }
}
