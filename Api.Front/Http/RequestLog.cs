using System.Diagnostics;

namespace OrleansGpu.Api.Http;

/// <summary>
/// One log line per request (at Debug: <c>Logging__LogLevel__OrleansGpu.Api.Http.RequestLog=Debug</c>), in place of ASP.NET Core's own (which prints the query string): method, path, status and
/// time. The query is never logged, since the dashboard's login carries the key there; it shows as <c>?…</c>.
/// </summary>
public sealed class RequestLog(RequestDelegate next, ILogger<RequestLog> logger)
{
    /// <summary>The categories whose messages would carry a request's full URL; <see cref="Program"/> keeps them at Warning.</summary>
    public static readonly string[] UrlLoggingCategories = ["Microsoft.AspNetCore.Hosting.Diagnostics", "Microsoft.AspNetCore.Server.Kestrel.BadRequests"];

    public async Task InvokeAsync(HttpContext context)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            await next(context);
        }
        finally
        {
            if (logger.IsEnabled(LogLevel.Debug))
            {
                logger.LogDebug(
                    "{Method} {Path}{Query} {Status} in {Milliseconds:0.0} ms",
                    context.Request.Method,
                    JsonRequest.Printable(context.Request.Path.Value ?? "/"),
                    context.Request.QueryString.HasValue ? "?…" : "",
                    context.Response.StatusCode,
                    Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            }
        }
    }
}
