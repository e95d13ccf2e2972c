using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using OrleansGpu.Api.Contracts;
using OrleansGpu.Api.Http;
using OrleansGpu.Api.Routing;
using OrleansGpu.Api.Scatter;
using OrleansGpu.Grains;

namespace OrleansGpu.Api.Endpoints;

/// <summary>
/// OpenAI's <c>POST /v1/embeddings</c> and <c>GET /v1/models</c>, so OpenAI SDKs, LangChain and OpenClaw memory search
/// can use the cluster: <c>input</c> as a string, an array of strings, or OpenAI (cl100k) token ids,
/// <c>encoding_format</c> float or base64 (raw little-endian float32, which the SDKs ask for by default), one item per
/// input with its <c>index</c>, and the tokens the model read as <c>usage</c>.
/// </summary>
public static class OpenAiEndpoints
{
    private static readonly long Started = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    public static void MapOpenAiEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapPost("/v1/embeddings", EmbeddingsAsync).WithName("openai-embeddings")
            .WithSummary("Embeddings in OpenAI's shape, equal to /embed's.")
            .WithJsonBody<OpenAiEmbeddingsRequest>().ProducesOpenAiErrors(compute: true);
        app.MapGet("/v1/models", ModelsAsync).WithName("openai-models")
            .WithSummary("The embedding models the cluster serves now: the default one and those loaded on a host.")
            .ProducesOpenAiErrors();
    }

    private static async Task<Ok<OpenAiEmbeddingsResponse>> EmbeddingsAsync(
        OpenAiEmbeddingsRequest request, ScatterGather cluster, IOptions<FrontDefaults> defaults, HttpContext context)
    {
        var input = request.Input!;
        IReadOnlyList<string> texts = input.TokenIds is { } ids ? [.. ids.Select(OpenAiTokens.Decode)] : (IReadOnlyList<string>)input.Texts!;
        var model = request.Model ?? defaults.Value.EmbedModel;
        var work = new EmbedWork(model, texts, Precision: request.Precision);
        var batch = await cluster.EmbedAsync(work, context.RequestAborted);
        if (request.Dimensions is { } asked && asked > batch.Dimensions)
        {
            throw new ApiException(ErrorCodes.InvalidInput, $"Model '{model}' has {batch.Dimensions} dimensions; 'dimensions' may be at most that.", "dimensions");
        }

        var dimensions = request.Dimensions ?? batch.Dimensions;
        var base64 = request.EncodingFormat == "base64";
        var data = new OpenAiEmbedding[batch.Count];
        for (var i = 0; i < data.Length; i++)
        {
            data[i] = new OpenAiEmbedding(i, new EmbeddingVector(Shorten(batch.Vector(i), dimensions), base64));
        }

        context.Response.Headers["X-Gpu-Host"] = batch.Host;
        return TypedResults.Ok(new OpenAiEmbeddingsResponse(data, model, new OpenAiUsage(batch.Tokens, batch.Tokens), batch.ComputePrecision));
    }

    /// <summary>
    /// OpenAI's <c>dimensions</c>: the first <paramref name="dimensions"/> components, normalised again to length 1.
    /// Models trained for it (Matryoshka representation learning) keep most of their quality; others lose it.
    /// </summary>
    internal static float[] Shorten(ReadOnlySpan<float> vector, int dimensions)
    {
        if (dimensions >= vector.Length)
        {
            return vector.ToArray();
        }

        var cut = vector[..dimensions].ToArray();
        var norm = MathF.Sqrt(System.Numerics.Tensors.TensorPrimitives.SumOfSquares(cut));
        if (norm > 0)
        {
            System.Numerics.Tensors.TensorPrimitives.Divide(cut, norm, cut);
        }

        return cut;
    }

    private static async Task<Ok<OpenAiModelList>> ModelsAsync(HostRouter router, IClusterClient client, IOptions<FrontDefaults> defaults, HttpContext context)
    {
        var infos = await ClusterView.InfosAsync(router, client, context.RequestAborted);
        var loaded = infos.SelectMany(i => i.LoadedModels).Where(m => m.Embedding).Select(m => m.Name).Distinct().Order().ToList();
        var fallback = defaults.Value.EmbedModel;
        if (!loaded.Any(m => m == fallback || m.EndsWith("/" + fallback, StringComparison.Ordinal)))
        {
            loaded.Insert(0, fallback);
        }

        return TypedResults.Ok(new OpenAiModelList([.. loaded.Select(m => new OpenAiModel(m, Started, m.Contains('/') ? m[..m.IndexOf('/')] : "orleansgpu"))]));
    }
}
