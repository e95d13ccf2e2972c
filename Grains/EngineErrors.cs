using OrleansGpu.Inference.BertScore;
using OrleansGpu.Inference.Embeddings;
using OrleansGpu.Inference.Models;

namespace OrleansGpu.Grains;

/// <summary>
/// The engine's errors about a request (the model, the input), as the 4xx/5xx errors that cross the wire: every host
/// would say the same, so the front answers at once and tries no other host.
/// </summary>
internal static class EngineErrors
{
    /// <summary>The client error for <paramref name="error"/>, or null for a failure of the host itself.</summary>
    public static InvalidWorkException? Translate(Exception error) => error switch
    {
        ModelNotFoundException ex => new InvalidWorkException(ErrorCodes.ModelNotFound, ex.Message),
        ModelNotAllowedException ex => new InvalidWorkException(ErrorCodes.ModelNotAllowed, ex.Message),
        ModelGatedException ex => new InvalidWorkException(ErrorCodes.ModelGated, ex.Message),
        HubUnavailableException ex => new InvalidWorkException(ErrorCodes.HubUnreachable, ex.Message),
        ModelDownloadException ex => new InvalidWorkException(ErrorCodes.ModelDownloadFailed, ex.Message),
        ModelNotSupportedException ex => new InvalidWorkException(ErrorCodes.ModelUnsupported, ex.Message),
        ModelUnreadableException ex => new InvalidWorkException(ErrorCodes.ModelUnreadable, ex.Message),
        InvalidModelException ex => new InvalidWorkException(ErrorCodes.ModelInvalid, ex.Message),
        InputTooLongException ex => new InvalidWorkException(ErrorCodes.InputTooLong, ex.Message),
        BaselineNotFoundException ex => new InvalidWorkException(ErrorCodes.BaselineNotFound, ex.Message),
        ArgumentException ex => new InvalidWorkException(ErrorCodes.InvalidInput, ex.Message.Split(" (Parameter", 2)[0]),
        _ => null,
    };

    public static async Task<T> TranslateAsync<T>(Func<Task<T>> work)
    {
        try
        {
            return await work();
        }
        catch (Exception ex) when (Translate(ex) is { } translated)
        {
            throw translated;
        }
    }

    public static T Translate<T>(Func<T> work)
    {
        try
        {
            return work();
        }
        catch (Exception ex) when (Translate(ex) is { } translated)
        {
            throw translated;
        }
    }
}
