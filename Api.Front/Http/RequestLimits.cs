namespace OrleansGpu.Api.Http;

/// <summary>Input rules of the seed plus a body-size limit.</summary>
public sealed record RequestLimits
{
    /// <summary>Texts (or pairs) per request (<c>GPU_MAX_BATCH_SIZE</c>, default 100 as in the seed).</summary>
    public int MaxBatchSize { get; init; } = 100;

    /// <summary>Characters per text (<c>GPU_MAX_TEXT_LENGTH</c>, default 10,000 as in the seed).</summary>
    public int MaxTextLength { get; init; } = 10_000;

    /// <summary>Bytes per request body (<c>GPU_MAX_BODY_BYTES</c>, default 8 MiB).</summary>
    public long MaxBodyBytes { get; init; } = 8 * 1024 * 1024;

    /// <summary>JSON nesting depth; a request never needs more than three levels.</summary>
    public int MaxJsonDepth { get; init; } = 16;

    public static RequestLimits FromConfiguration(IConfiguration configuration)
    {
        var d = new RequestLimits();
        return new RequestLimits
        {
            MaxBatchSize = Positive(configuration["GPU_MAX_BATCH_SIZE"] ?? configuration["Api:MaxBatchSize"], d.MaxBatchSize, "GPU_MAX_BATCH_SIZE"),
            MaxTextLength = Positive(configuration["GPU_MAX_TEXT_LENGTH"] ?? configuration["Api:MaxTextLength"], d.MaxTextLength, "GPU_MAX_TEXT_LENGTH"),
            MaxBodyBytes = Positive(configuration["GPU_MAX_BODY_BYTES"] ?? configuration["Api:MaxBodyBytes"], (int)d.MaxBodyBytes, "GPU_MAX_BODY_BYTES"),
        };
    }

    private static int Positive(string? value, int fallback, string name) =>
        string.IsNullOrWhiteSpace(value) ? fallback
        : int.TryParse(value, out var n) && n > 0 ? n
        : throw new ArgumentException($"{name} must be a positive integer; got '{value}'.");
}
