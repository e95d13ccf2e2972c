using OrleansGpu.Api.Http;

namespace OrleansGpu.Api.Endpoints;

/// <summary>
/// The Orleans dashboard's API answers a name it cannot parse or does not know (<c>/dashboard/HistoricalStats/x</c>)
/// with an exception; that is the caller's mistake, so a 404 that says so, not a 500.
/// </summary>
internal static class DashboardErrors
{
    public static async ValueTask<object?> FilterAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        try
        {
            return await next(context);
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException or KeyNotFoundException or InvalidOperationException or IndexOutOfRangeException)
        {
            throw new ApiException(ApiErrorCodes.NotFound, $"The dashboard has nothing at {JsonRequest.Printable(context.HttpContext.Request.Path.Value ?? "")}.");
        }
    }
}
