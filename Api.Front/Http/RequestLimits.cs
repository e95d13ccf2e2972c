using Microsoft.Extensions.Options;
using OrleansGpu.Api.Hosting;

namespace OrleansGpu.Api.Http;

/// <summary>
/// What one request may hold. The defaults accept whatever the seed service and OpenAI's API accept: 2,048 inputs
/// (OpenAI's cap, the Vercel AI SDK's batch), texts of any length (only the model's window is read, and the body
/// limit bounds memory).
/// </summary>
public sealed class RequestLimits
{
    /// <summary>
    /// Texts per request (<c>GPU_MAX_BATCH_SIZE</c> or <c>Api:MaxBatchSize</c>, default 2048). For <c>/bertscore</c>,
    /// candidates and references together; for token-id input, the arrays of ids.
    /// </summary>
    public int MaxInputs { get; set; } = 2048;

    /// <summary>
    /// Characters per text, and token ids per token-id input (<c>GPU_MAX_TEXT_LENGTH</c> or <c>Api:MaxTextLength</c>);
    /// none by default: a long text is cut at the model's window.
    /// </summary>
    public int? MaxTextLength { get; set; }

    /// <summary>Bytes per request body, after decompression (<c>GPU_MAX_BODY_BYTES</c> or <c>Api:MaxBodyBytes</c>, default 8 MiB).</summary>
    public long MaxBodyBytes { get; set; } = 8 * 1024 * 1024;

    /// <summary>JSON nesting depth; a request never needs more than three levels.</summary>
    public int MaxJsonDepth { get; set; } = 16;

    internal List<string> Problems { get; } = [];
}

internal sealed class RequestLimitsSetup(IConfiguration configuration) : IConfigureOptions<RequestLimits>, IValidateOptions<RequestLimits>
{
    public void Configure(RequestLimits options)
    {
        var settings = new Settings(configuration, options.Problems);
        options.MaxInputs = settings.PositiveInt("GPU_MAX_BATCH_SIZE", "Api:MaxBatchSize") ?? options.MaxInputs;
        options.MaxTextLength = settings.PositiveInt("GPU_MAX_TEXT_LENGTH", "Api:MaxTextLength") ?? options.MaxTextLength;
        options.MaxBodyBytes = settings.PositiveInt("GPU_MAX_BODY_BYTES", "Api:MaxBodyBytes") ?? options.MaxBodyBytes;
    }

    public ValidateOptionsResult Validate(string? name, RequestLimits options)
    {
        var problems = new List<string>(options.Problems);
        if (options.MaxBodyBytes < 1024)
        {
            problems.Add($"GPU_MAX_BODY_BYTES must be at least 1024; got {options.MaxBodyBytes}.");
        }

        if (options.MaxJsonDepth is < 4 or > 256)
        {
            problems.Add($"The JSON depth limit must be between 4 and 256; got {options.MaxJsonDepth}.");
        }

        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }
}
