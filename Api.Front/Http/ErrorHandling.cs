using OrleansGpu.Api.Routing;
using OrleansGpu.Grains;

namespace OrleansGpu.Api.Http;

/// <summary>
/// Turns every failure into a JSON error with the right status: the caller's mistakes are 4xx with what is wrong,
/// a cluster that cannot serve is 503 with Retry-After, and anything unexpected is a logged 500; the server stays up.
/// </summary>
public sealed class ErrorHandling(RequestDelegate next, ILogger<ErrorHandling> logger)
{
    public async Task InvokeAsync(HttpContext context)
    {
        try
        {
            await next(context);
        }
        catch (BadRequestException ex)
        {
            await ApiErrors.WriteAsync(context, ex.Status, ex.Code, ex.Message, ex.Param);
        }
        catch (InvalidWorkException ex)
        {
            await ApiErrors.WriteAsync(context, ex.StatusCode, ex.Code, ex.Message, ex.Code == ErrorCodes.ModelNotFound ? "model" : null);
        }
        catch (NoHostAvailableException ex)
        {
            logger.LogWarning("Request {Path} not served: {Reason}", context.Request.Path, ex.Message);
            await ApiErrors.WriteAsync(context, StatusCodes.Status503ServiceUnavailable, ex.Busy ? "busy" : "no_host", ex.Message);
        }
        catch (BadHttpRequestException ex)
        {
            await ApiErrors.WriteAsync(context, ex.StatusCode, "bad_request", ex.Message);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away; nobody is left to answer.
        }
        catch (Exception ex)
        {
            logger.LogError(ex, "Request {Method} {Path} failed", context.Request.Method, context.Request.Path);
            await ApiErrors.WriteAsync(context, StatusCodes.Status500InternalServerError, "internal_error", "The server failed to process the request.");
        }
    }
}
