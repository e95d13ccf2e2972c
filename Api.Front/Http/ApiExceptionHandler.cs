using Microsoft.AspNetCore.Diagnostics;
using OrleansGpu.Api.Routing;
using OrleansGpu.Grains;

namespace OrleansGpu.Api.Http;

/// <summary>
/// Turns every failure into the API's JSON error: the caller's mistakes are 4xx that say what is wrong, a cluster
/// that cannot serve is a 503 with Retry-After, anything unexpected a logged 500 that shows nothing of the server.
/// </summary>
public sealed class ApiExceptionHandler(IProblemDetailsService problems, ILogger<ApiExceptionHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext context, Exception exception, CancellationToken cancellationToken)
    {
        if (context.RequestAborted.IsCancellationRequested && exception is OperationCanceledException)
        {
            return true; // the client went away; nobody is left to answer
        }

        var (code, message, param) = exception switch
        {
            ApiException ex => (ex.Code, ex.Message, ex.Param),
            InvalidWorkException ex => (ex.Code, ex.Message, ex.Code == ErrorCodes.ModelNotFound ? "model" : null),
            NoHostAvailableException ex => (ex.Busy ? ApiErrorCodes.Busy : ApiErrorCodes.NoHost, ex.Message, null),
            BadHttpRequestException ex => (ApiErrorCatalog.Code(ex.StatusCode), ex.StatusCode == 413 ? "The request body is too large." : ex.Message, null),
            _ => (ApiErrorCodes.InternalError, "The server failed to process the request.", (string?)null),
        };

        var status = ApiErrorCatalog.Status(code);
        if (status >= 500 && exception is not NoHostAvailableException)
        {
            logger.LogError(exception, "Request {Method} {Path} failed", context.Request.Method, context.Request.Path);
        }
        else if (exception is NoHostAvailableException)
        {
            logger.LogWarning("Request {Path} not served: {Reason}", context.Request.Path, message);
        }

        await ApiErrorWriter.WriteAsync(problems, context, status, code, message, param);
        return true;
    }
}
