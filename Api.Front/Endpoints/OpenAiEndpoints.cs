using System.Runtime.InteropServices;
using System.Text.Json;
using OrleansGpu.Api.Http;
using OrleansGpu.Api.Routing;
using OrleansGpu.Grains;

namespace OrleansGpu.Api.Endpoints;

/// <summary>
/// OpenAI's <c>POST /v1/embeddings</c>, so OpenAI SDKs, LangChain and OpenClaw memory search can use the cluster:
/// <c>input</c> as a string, an array of strings, or OpenAI (cl100k) token ids, <c>encoding_format</c> float or
/// base64 (raw little-endian float32, which the SDKs ask for by default), one item per input with its <c>index</c>.
/// </summary>
public static class OpenAiEndpoints
{
    public static void MapOpenAiEndpoints(this IEndpointRouteBuilder app) =>
        app.MapPost("/v1/embeddings", EmbeddingsAsync).WithName("openai-embeddings");

    private static async Task EmbeddingsAsync(HttpContext context, HostRouter router, RequestLimits limits, FrontDefaults defaults)
    {
        using var document = await JsonBody.ReadAsync(context, limits);
        var body = document.RootElement;
        var texts = Inputs(body, limits);
        var model = JsonBody.OptionalString(body, "model") ?? defaults.EmbedModel;
        var format = JsonBody.OptionalString(body, "encoding_format") ?? "float";
        if (format is not ("float" or "base64"))
        {
            throw new BadRequestException($"'encoding_format' must be float or base64; got '{format}'.", "encoding_format");
        }

        var dimensions = JsonBody.OptionalInt(body, "dimensions", 1, 65536);
        var work = new EmbedWork(model, texts);
        var batch = await router.ExecuteAsync(WorkSize.Tokens(texts), (host, ct) => host.EmbedAsync(work, ct), context.RequestAborted);
        if (dimensions is { } d && d != batch.Dimensions)
        {
            throw new BadRequestException($"Model '{model}' returns {batch.Dimensions} dimensions; 'dimensions' cannot change that.", "dimensions");
        }

        context.Response.Headers["X-Gpu-Host"] = batch.Host;
        context.Response.ContentType = "application/json";
        var tokens = texts.Sum(t => Math.Max(1, t.Length / 4));

        // Written by hand so base64 strings go out verbatim: the default JSON encoder would escape '+' as \u002B,
        // which older OpenAI .NET clients cannot decode.
        await using var writer = new Utf8JsonWriter(context.Response.BodyWriter.AsStream());
        writer.WriteStartObject();
        writer.WriteString("object", "list");
        writer.WriteStartArray("data");
        for (var i = 0; i < batch.Count; i++)
        {
            writer.WriteStartObject();
            writer.WriteString("object", "embedding");
            writer.WriteNumber("index", i);
            writer.WritePropertyName("embedding");
            var vector = batch.Vector(i);
            if (format == "base64")
            {
                writer.WriteRawValue($"\"{Convert.ToBase64String(MemoryMarshal.AsBytes(vector))}\"", skipInputValidation: true);
            }
            else
            {
                writer.WriteStartArray();
                foreach (var v in vector)
                {
                    writer.WriteNumberValue(v);
                }

                writer.WriteEndArray();
            }

            writer.WriteEndObject();
        }

        writer.WriteEndArray();
        writer.WriteString("model", model);
        writer.WriteStartObject("usage");
        writer.WriteNumber("prompt_tokens", tokens);
        writer.WriteNumber("total_tokens", tokens);
        writer.WriteEndObject();
        writer.WriteEndObject();
        await writer.FlushAsync(context.RequestAborted);
    }

    private static IReadOnlyList<string> Inputs(JsonElement body, RequestLimits limits)
    {
        if (!body.TryGetProperty("input", out var input) || input.ValueKind == JsonValueKind.Null)
        {
            throw new BadRequestException("'input' is required: a string or an array of strings.", "input");
        }

        if (input.ValueKind == JsonValueKind.String)
        {
            var text = input.GetString()!;
            return text.Length > limits.MaxTextLength
                ? throw new BadRequestException($"'input' has {text.Length} characters; at most {limits.MaxTextLength} are allowed.", "input")
                : [text];
        }

        if (input.ValueKind == JsonValueKind.Array && input.GetArrayLength() > 0 && input[0].ValueKind == JsonValueKind.Number)
        {
            return [OpenAiTokens.Decode(input, "input")];
        }

        if (input.ValueKind == JsonValueKind.Array && input.GetArrayLength() > 0 && input[0].ValueKind == JsonValueKind.Array)
        {
            if (input.GetArrayLength() > limits.MaxBatchSize)
            {
                throw new BadRequestException($"'input' has {input.GetArrayLength()} items; at most {limits.MaxBatchSize} are allowed per request.", "input");
            }

            return [.. input.EnumerateArray().Select((ids, i) => OpenAiTokens.Decode(ids, $"input[{i}]"))];
        }

        return JsonBody.Strings(input, "input", limits);
    }
}
