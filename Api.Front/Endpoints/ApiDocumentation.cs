using System.Text.Json.Nodes;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;
using OrleansGpu.Api.Contracts;

namespace OrleansGpu.Api.Endpoints;

/// <summary>
/// What <c>/openapi/v1.json</c> says beyond what the framework infers: the JSON request bodies (read by the records'
/// own binders, so the framework cannot see them), the shapes of the unions the seed and OpenAI allow, the error
/// bodies, examples, and the key.
/// </summary>
public static class ApiDocumentation
{
    /// <summary>The route takes a JSON body of type <typeparamref name="T"/>.</summary>
    public static RouteHandlerBuilder WithJsonBody<T>(this RouteHandlerBuilder route) => route.WithMetadata(new JsonBody(typeof(T)));

    /// <summary>The errors of a seed route: problem details with <c>detail</c> and <c>code</c>.</summary>
    public static RouteHandlerBuilder ProducesSeedErrors(this RouteHandlerBuilder route, bool compute = false) =>
        Errors<ProblemResponse>(route, "application/problem+json", compute);

    /// <summary>The errors of a <c>/v1</c> route, in OpenAI's shape.</summary>
    public static RouteHandlerBuilder ProducesOpenAiErrors(this RouteHandlerBuilder route, bool compute = false) =>
        Errors<OpenAiErrorResponse>(route, "application/json", compute);

    private static RouteHandlerBuilder Errors<T>(RouteHandlerBuilder route, string contentType, bool compute)
    {
        route.Produces<T>(StatusCodes.Status401Unauthorized, contentType);
        if (compute)
        {
            foreach (var status in new[] { 400, 404, 413, 415, 422, 503 })
            {
                route.Produces<T>(status, contentType);
            }
        }

        return route;
    }

    private static readonly HashSet<Type> RequestTypes = [typeof(EmbedRequest), typeof(BertScoreRequest), typeof(BaselineRequest), typeof(OpenAiEmbeddingsRequest)];

    public static void Configure(OpenApiOptions options)
    {
        options.AddSchemaTransformer((schema, context, _) =>
        {
            // A required field of a request is never null, whatever its C# type says (the records leave that to validation).
            if (RequestTypes.Contains(context.JsonTypeInfo.Type) && schema.Required is { Count: > 0 } required && schema.Properties is { } properties)
            {
                foreach (var name in required)
                {
                    if (properties.TryGetValue(name, out var found) && found is OpenApiSchema { Type: { } kind } property)
                    {
                        property.Type = kind & ~JsonSchemaType.Null;
                    }
                }
            }

            var type = context.JsonTypeInfo.Type;
            if (type == typeof(References))
            {
                Union(schema, "One reference per candidate, or a non-empty array of references per candidate.",
                    Array(Text()), Array(Array(Text())));
            }
            else if (type == typeof(EmbeddingInput))
            {
                Union(schema, "A text, texts, or cl100k_base token ids (one array, or one array per input).",
                    Text(), Array(Text()), Array(Id()), Array(Array(Id())));
            }
            else if (type == typeof(EmbeddingVector))
            {
                Union(schema, "The vector: floats, or base64 of little-endian float32 when encoding_format is base64.",
                    Array(new OpenApiSchema { Type = JsonSchemaType.Number }), new OpenApiSchema { Type = JsonSchemaType.String, ContentEncoding = "base64" });
            }

            return Task.CompletedTask;
        });

        options.AddOperationTransformer(async (operation, context, cancellationToken) =>
        {
            var metadata = context.Description.ActionDescriptor.EndpointMetadata;
            if (metadata.OfType<JsonBody>().FirstOrDefault() is { } body)
            {
                var schema = await context.GetOrCreateSchemaAsync(body.Type, null, cancellationToken);
                operation.RequestBody = new OpenApiRequestBody
                {
                    Required = true,
                    Content = new Dictionary<string, OpenApiMediaType>
                    {
                        ["application/json"] = new() { Schema = schema, Example = Examples.Request(operation.OperationId) },
                    },
                };
            }

            if (operation.Responses?.TryGetValue("200", out var ok) == true && ok.Content is { } content && Examples.Response(operation.OperationId) is { } example)
            {
                foreach (var media in content.Values)
                {
                    media.Example = example;
                }
            }
        });

        options.AddDocumentTransformer((document, _, _) =>
        {
            document.Info.Title = "OrleansGpu";
            document.Info.Description = "Sentence embeddings and BERTScore on a cluster of GPU hosts. Every route but /health needs the key "
                + "(when one is configured), as X-API-Key or Authorization: Bearer.";
            document.Components ??= new OpenApiComponents();
            document.Components.SecuritySchemes = new Dictionary<string, IOpenApiSecurityScheme>
            {
                ["ApiKey"] = new OpenApiSecurityScheme { Type = SecuritySchemeType.ApiKey, In = ParameterLocation.Header, Name = "X-API-Key" },
                ["Bearer"] = new OpenApiSecurityScheme { Type = SecuritySchemeType.Http, Scheme = "bearer" },
            };
            document.Security =
            [
                new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference("ApiKey", document)] = [] },
                new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference("Bearer", document)] = [] },
            ];
            return Task.CompletedTask;
        });
    }

    private static void Union(OpenApiSchema schema, string description, params IOpenApiSchema[] shapes)
    {
        schema.Type = null;
        schema.Properties?.Clear();
        schema.Description = description;
        schema.OneOf = [.. shapes];
    }

    private static OpenApiSchema Text() => new() { Type = JsonSchemaType.String };

    private static OpenApiSchema Id() => new() { Type = JsonSchemaType.Integer, Minimum = "0", Maximum = "100276" };

    private static OpenApiSchema Array(IOpenApiSchema items) => new() { Type = JsonSchemaType.Array, Items = items };

    private sealed record JsonBody(Type Type);

    /// <summary>An example request and response per route, as a user would send and get them.</summary>
    private static class Examples
    {
        public static JsonNode? Request(string? operation) => operation switch
        {
            "embed" => Parse("""{"texts": ["The weather is lovely today.", "It is so sunny outside!"]}"""),
            "bertscore" => Parse("""{"candidates": ["The cat sat on the mat."], "references": ["A cat was sitting on the mat."], "model_type": "microsoft/deberta-xlarge-mnli"}"""),
            "openai-embeddings" => Parse("""{"input": ["hello world"], "model": "all-MiniLM-L6-v2", "encoding_format": "float"}"""),
            _ => null,
        };

        public static JsonNode? Response(string? operation) => operation switch
        {
            "health" => Parse("""{"status": "ok", "device": "cuda", "hosts": 2, "ready": true}"""),
            "embed" => Parse("""{"embeddings": [[0.0342, -0.0121, 0.0583], [0.0219, -0.0304, 0.0417]], "model": "all-MiniLM-L6-v2", "dimensions": 3}"""),
            "bertscore" => Parse("""{"precision": [0.7912], "recall": [0.7731], "f1": [0.7820], "model": "microsoft/deberta-xlarge-mnli", "num_layers": 40, "hash": "microsoft/deberta-xlarge-mnli_L40_no-idf_version=0.3.12(hug_trans=5.17.0)"}"""),
            "openai-embeddings" => Parse("""{"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.0342, -0.0121, 0.0583]}], "model": "all-MiniLM-L6-v2", "usage": {"prompt_tokens": 4, "total_tokens": 4}}"""),
            "openai-models" => Parse("""{"object": "list", "data": [{"id": "sentence-transformers/all-MiniLM-L6-v2", "object": "model", "created": 1764115200, "owned_by": "sentence-transformers"}]}"""),
            _ => null,
        };

        private static JsonNode Parse(string json) => JsonNode.Parse(json)!;
    }
}
