using OrleansGpu.Grains;

namespace OrleansGpu.Api.Http;

/// <summary>A request the front refuses itself, before or instead of asking a GPU host.</summary>
public sealed class ApiException(string code, string message, string? param = null) : Exception(message)
{
    /// <summary>One of <see cref="ApiErrorCodes"/> or <see cref="ErrorCodes"/>; its status comes from <see cref="ApiErrorCatalog"/>.</summary>
    public string Code { get; } = code;

    /// <summary>The request field at fault, as OpenAI's <c>param</c>.</summary>
    public string? Param { get; } = param;
}

/// <summary>The codes the front gives itself (the hosts' codes are in <see cref="ErrorCodes"/>).</summary>
public static class ApiErrorCodes
{
    public const string InvalidJson = "invalid_json";
    public const string InvalidUnicode = "invalid_unicode";
    public const string InvalidInput = ErrorCodes.InvalidInput;
    public const string BodyTooLarge = "body_too_large";
    public const string UnsupportedMediaType = "unsupported_media_type";
    public const string HostNotAllowed = "host_not_allowed";
    public const string Unauthorized = "unauthorized";
    public const string NotFound = "not_found";
    public const string MethodNotAllowed = "method_not_allowed";
    public const string Busy = "busy";
    public const string NoHost = "no_host";
    public const string BadRequest = "bad_request";
    public const string InternalError = "internal_error";
}

/// <summary>
/// The one map from an error's code to its HTTP status, for the front's own errors and the hosts' alike. Anything not
/// listed is a 400: the codes name what is wrong with the request.
/// </summary>
public static class ApiErrorCatalog
{
    private static readonly Dictionary<string, int> Statuses = new(StringComparer.Ordinal)
    {
        [ApiErrorCodes.InvalidJson] = StatusCodes.Status400BadRequest,
        [ApiErrorCodes.InvalidUnicode] = StatusCodes.Status400BadRequest,
        [ApiErrorCodes.BadRequest] = StatusCodes.Status400BadRequest,
        [ApiErrorCodes.HostNotAllowed] = StatusCodes.Status400BadRequest,
        [ErrorCodes.InvalidInput] = StatusCodes.Status400BadRequest,
        [ErrorCodes.InputTooLong] = StatusCodes.Status400BadRequest,
        [ErrorCodes.BaselineNotFound] = StatusCodes.Status400BadRequest,
        [ErrorCodes.ModelInvalid] = StatusCodes.Status400BadRequest,
        [ErrorCodes.ModelUnsupported] = StatusCodes.Status400BadRequest,

        // The request is well formed, but the model it names cannot fit the host's memory budget (not 413: the body is fine).
        [ErrorCodes.ModelTooLarge] = StatusCodes.Status422UnprocessableEntity,
        [ErrorCodes.ModelNotAllowed] = StatusCodes.Status403Forbidden,
        [ErrorCodes.ModelGated] = StatusCodes.Status403Forbidden,
        [ErrorCodes.ModelDownloadFailed] = StatusCodes.Status502BadGateway,

        // The host's copy of the files is at fault, not the request.
        [ErrorCodes.ModelUnreadable] = StatusCodes.Status500InternalServerError,
        [ErrorCodes.HubUnreachable] = StatusCodes.Status503ServiceUnavailable,
        [ApiErrorCodes.Unauthorized] = StatusCodes.Status401Unauthorized,
        [ErrorCodes.ModelNotFound] = StatusCodes.Status404NotFound,
        [ApiErrorCodes.NotFound] = StatusCodes.Status404NotFound,
        [ApiErrorCodes.MethodNotAllowed] = StatusCodes.Status405MethodNotAllowed,
        [ApiErrorCodes.BodyTooLarge] = StatusCodes.Status413PayloadTooLarge,
        [ApiErrorCodes.UnsupportedMediaType] = StatusCodes.Status415UnsupportedMediaType,
        [ApiErrorCodes.InternalError] = StatusCodes.Status500InternalServerError,
        [ApiErrorCodes.Busy] = StatusCodes.Status503ServiceUnavailable,
        [ApiErrorCodes.NoHost] = StatusCodes.Status503ServiceUnavailable,
    };

    public static int Status(string code) => Statuses.GetValueOrDefault(code, StatusCodes.Status400BadRequest);

    /// <summary>The code for a status the framework set without one (status code pages, the framework's own 4xx).</summary>
    public static string Code(int status) => status switch
    {
        401 => ApiErrorCodes.Unauthorized,
        404 => ApiErrorCodes.NotFound,
        405 => ApiErrorCodes.MethodNotAllowed,
        413 => ApiErrorCodes.BodyTooLarge,
        415 => ApiErrorCodes.UnsupportedMediaType,
        503 => ApiErrorCodes.NoHost,
        >= 500 => ApiErrorCodes.InternalError,
        _ => ApiErrorCodes.BadRequest,
    };
}
