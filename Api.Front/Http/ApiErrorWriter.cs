using System.Text.Json;
using Microsoft.AspNetCore.Mvc;
using OrleansGpu.Api.Contracts;

namespace OrleansGpu.Api.Http;

/// <summary>
/// Writes every error the front answers, whoever raised it (the exception handler, validation, status code pages,
/// authentication): problem details with <c>detail</c> and <c>code</c> on the seed routes, OpenAI's
/// <c>{"error": {message, type, param, code}}</c> under <c>/v1</c>; 503 with <c>Retry-After: 5</c>.
/// </summary>
public sealed class ApiErrorWriter : IProblemDetailsWriter
{
    private const string CodeKey = "code";
    private const string ParamKey = "param";

    public bool CanWrite(ProblemDetailsContext context) => true;

    /// <summary>Writes an error with its code; the status comes from the code unless given.</summary>
    public static Task WriteAsync(IProblemDetailsService problems, HttpContext context, int status, string code, string message, string? param = null)
    {
        context.Response.StatusCode = status;
        var details = new ProblemDetails { Status = status, Detail = message };
        details.Extensions[CodeKey] = code;
        details.Extensions[ParamKey] = param;
        return problems.WriteAsync(new ProblemDetailsContext { HttpContext = context, ProblemDetails = details }).AsTask();
    }

    public ValueTask WriteAsync(ProblemDetailsContext context)
    {
        var http = context.HttpContext;
        var details = context.ProblemDetails;
        var status = details.Status ?? http.Response.StatusCode;
        var code = details.Extensions.TryGetValue(CodeKey, out var c) && c is string given ? given : ApiErrorCatalog.Code(status);
        var param = details.Extensions.TryGetValue(ParamKey, out var p) ? p as string : null;
        var message = details.Detail;
        if (details is HttpValidationProblemDetails { Errors.Count: > 0 } validation)
        {
            // Validation lists every failure by field; the API's shape carries one message, so it says the first.
            var (field, messages) = validation.Errors.First();
            message ??= messages.FirstOrDefault();
            param ??= string.Join('.', field.Split('.').Select(JsonNamingPolicy.SnakeCaseLower.ConvertName));
            code = ApiErrorCodes.InvalidInput;
        }

        message ??= status switch
        {
            404 => $"No route {http.Request.Method} {JsonRequest.Printable(http.Request.Path.Value ?? "/")}.",
            405 => $"{http.Request.Method} is not allowed on {JsonRequest.Printable(http.Request.Path.Value ?? "/")}.",
            415 => "Send the body as JSON, with Content-Type: application/json.",
            _ => "The request failed.",
        };

        http.Response.StatusCode = status;
        if (status is StatusCodes.Status503ServiceUnavailable or StatusCodes.Status429TooManyRequests)
        {
            http.Response.Headers.RetryAfter = "5";
        }

        if (http.Request.Path.StartsWithSegments("/v1"))
        {
            var type = status switch
            {
                429 => "rate_limit_exceeded",
                >= 500 => "server_error",
                _ => "invalid_request_error",
            };
            return new ValueTask(JsonSerializer.SerializeAsync(
                Body(http, "application/json"), new OpenAiErrorResponse(new OpenAiError(message, type, param, code)), ApiJson.Relaxed.OpenAiErrorResponse, http.RequestAborted));
        }

        var problem = new ProblemResponse($"https://httpstatuses.io/{status}", ReasonPhrase(status), status, message, code);
        return new ValueTask(JsonSerializer.SerializeAsync(Body(http, "application/problem+json"), problem, ApiJson.Relaxed.ProblemResponse, http.RequestAborted));
    }

    private static Stream Body(HttpContext http, string contentType)
    {
        http.Response.ContentType = contentType;
        return http.Response.Body;
    }

    private static string ReasonPhrase(int status) => status switch
    {
        413 => "Payload Too Large",
        _ => Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(status) is { Length: > 0 } phrase ? phrase : "Error",
    };
}
