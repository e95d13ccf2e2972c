using System.Text.Encodings.Web;
using System.Text.Json;

namespace OrleansGpu.Api.Http;

/// <summary>
/// Error bodies. Native routes answer RFC 9457 problem details (<c>detail</c> holds the message, as the seed's
/// FastAPI <c>{"detail": ...}</c> did) plus a machine-readable <c>code</c>; <c>/v1</c> routes answer OpenAI's
/// <c>{"error": {message, type, param, code}}</c>.
/// </summary>
public static class ApiErrors
{
    /// <summary>JSON as clients expect to read it: quotes and '+' written as themselves, not as \u0027 or \u002B.</summary>
    public static JsonSerializerOptions Json { get; } = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static Task WriteAsync(HttpContext context, int status, string code, string message, string? param = null)
    {
        if (context.Response.HasStarted)
        {
            return Task.CompletedTask;
        }

        context.Response.StatusCode = status;
        if (status == StatusCodes.Status503ServiceUnavailable || status == StatusCodes.Status429TooManyRequests)
        {
            context.Response.Headers.RetryAfter = "5";
        }

        if (context.Request.Path.StartsWithSegments("/v1"))
        {
            context.Response.ContentType = "application/json";
            return context.Response.WriteAsync(JsonSerializer.Serialize(new
            {
                error = new
                {
                    message,
                    type = status switch
                    {
                        401 => "invalid_request_error",
                        429 => "rate_limit_exceeded",
                        >= 500 => "server_error",
                        _ => "invalid_request_error",
                    },
                    param,
                    code,
                },
            }, Json));
        }

        context.Response.ContentType = "application/problem+json";
        return context.Response.WriteAsync(JsonSerializer.Serialize(new
        {
            type = $"https://httpstatuses.io/{status}",
            title = ReasonPhrase(status),
            status,
            detail = message,
            code,
        }, Json));
    }

    private static string ReasonPhrase(int status) => status switch
    {
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        503 => "Service Unavailable",
        _ => Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(status),
    };
}

/// <summary>A request the front refuses before it reaches a GPU host.</summary>
public sealed class BadRequestException(string message, string? param = null, int status = StatusCodes.Status400BadRequest, string code = "invalid_input")
    : Exception(message)
{
    public string? Param { get; } = param;

    public int Status { get; } = status;

    public string Code { get; } = code;
}
