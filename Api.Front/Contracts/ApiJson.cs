using System.Text.Json.Serialization;

namespace OrleansGpu.Api.Contracts;

/// <summary>
/// The API's JSON, generated at build time: snake_case names as the seed and OpenAI use, nulls written (the seed's
/// <c>/info</c> has <c>cuda_version: null</c> on the CPU), numbers only as JSON numbers (no NaN, no strings).
/// </summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    NumberHandling = JsonNumberHandling.Strict,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip,
    ReadCommentHandling = System.Text.Json.JsonCommentHandling.Disallow)]
[JsonSerializable(typeof(EmbedRequest))]
[JsonSerializable(typeof(BertScoreRequest))]
[JsonSerializable(typeof(OpenAiEmbeddingsRequest))]
[JsonSerializable(typeof(HealthResponse))]
[JsonSerializable(typeof(InfoResponse))]
[JsonSerializable(typeof(StatusResponse))]
[JsonSerializable(typeof(EmbedResponse))]
[JsonSerializable(typeof(BertScoreResponse))]
[JsonSerializable(typeof(OpenAiEmbeddingsResponse))]
[JsonSerializable(typeof(OpenAiModelList))]
[JsonSerializable(typeof(ProblemResponse))]
[JsonSerializable(typeof(OpenAiErrorResponse))]
public sealed partial class ApiJson : JsonSerializerContext
{
    /// <summary>As <see cref="JsonSerializerContext"/>'s default, writing quotes, '+' and non-ASCII text as themselves, not as \u0027 or \u002B.</summary>
    public static ApiJson Relaxed => LazyRelaxed.Value;

    private static readonly Lazy<ApiJson> LazyRelaxed = new(() => new(new System.Text.Json.JsonSerializerOptions(Default!.Options)
    {
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        TypeInfoResolver = null,
    }));
}
