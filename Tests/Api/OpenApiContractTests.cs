using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;

namespace OrleansGpu.Tests.Api;

/// <summary>
/// <c>/openapi/v1.json</c> documents every route with its request and response schemas, and real responses, errors
/// included, are valid against them (checked with a JSON Schema validator, as a generated client would rely on).
/// </summary>
[Collection(FrontCollection.Name)]
public sealed class OpenApiContractTests(FrontFixture fixture)
{
    private static readonly string[] Routes = ["get /health", "get /info", "get /status", "post /embed", "post /bertscore", "post /v1/embeddings", "get /v1/models"];

    [Fact]
    public async Task Every_route_is_documented_with_schemas_and_examples()
    {
        var document = await DocumentAsync();
        foreach (var route in Routes)
        {
            var operation = Operation(document, route);
            Assert.NotNull(operation["responses"]?["200"]?["content"]?["application/json"]?["schema"]);
            if (route.StartsWith("post", StringComparison.Ordinal))
            {
                var body = operation["requestBody"]?["content"]?["application/json"];
                Assert.NotNull(body?["schema"]?["properties"]);
                Assert.NotNull(body?["schema"]?["properties"]?["precision"]);
                Assert.NotNull(body?["example"]);
                Assert.NotNull(operation["responses"]?["400"]);
                Assert.NotNull(operation["responses"]?["200"]?["content"]?["application/json"]?["example"]);
            }
        }

        Assert.Null(document["paths"]?["/dashboard/Trace"]);
    }

    public static TheoryData<string, string?, int> Exchanges => new()
    {
        { "get /health", null, 200 },
        { "get /info", null, 200 },
        { "get /status", null, 200 },
        { "post /embed", """{"texts": ["a", "b"]}""", 200 },
        { "post /embed", """{"texts": []}""", 400 },
        { "post /embed", """{"texts": ["a"], "model": "nobody/nothing"}""", 404 },
        { "post /embed", """{"texts": ["a"], "precision": "fp16"}""", 200 },
        { "post /embed", """{"texts": ["a"], "precision": "fp8"}""", 400 },
        { "post /v1/embeddings", """{"input": "a", "precision": "fp32"}""", 200 },
        { "post /bertscore", """{"candidates": ["a", "[CLS]"], "references": [["b", "c"], ["d"]], "model": "all-MiniLM-L6-v2"}""", 200 },
        { "post /bertscore", """{"candidates": ["a"], "references": 3}""", 400 },
        { "post /v1/embeddings", """{"input": "a", "encoding_format": "base64"}""", 200 },
        { "post /v1/embeddings", """{"input": [[9906, 1917]]}""", 200 },
        { "post /v1/embeddings", """{"input": "a", "dimensions": 0}""", 400 },
        { "get /v1/models", null, 200 },
    };

    [Theory]
    [MemberData(nameof(Exchanges))]
    public async Task Real_responses_are_valid_against_the_documented_schemas(string route, string? request, int status)
    {
        var document = await DocumentAsync();
        var operation = Operation(document, route);
        var (method, path) = (route.Split(' ')[0], route.Split(' ')[1]);
        using var http = fixture.Client();
        using var message = new HttpRequestMessage(new HttpMethod(method.ToUpperInvariant()), path);
        if (request is not null)
        {
            message.Content = new StringContent(request, System.Text.Encoding.UTF8, "application/json");
            if (status == 200)
            {
                Assert.True(Valid(document, operation["requestBody"]!["content"]!["application/json"]!["schema"]!, request, out var requestErrors), requestErrors);
            }
        }

        using var response = await http.SendAsync(message, TestContext.Current.CancellationToken);
        var text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.True(status == (int)response.StatusCode, $"{(int)response.StatusCode}: {text}");
        var media = response.Content.Headers.ContentType!.MediaType!;
        var schema = operation["responses"]?[status.ToString()]?["content"]?[media]?["schema"];
        Assert.True(schema is not null, $"{route} does not document {status} as {media}");
        Assert.True(Valid(document, schema!, text, out var errors), errors);
    }

    private async Task<JsonNode> DocumentAsync()
    {
        using var http = fixture.Client();
        return JsonNode.Parse(await http.GetStringAsync("/openapi/v1.json", TestContext.Current.CancellationToken))!;
    }

    private static JsonNode Operation(JsonNode document, string route) =>
        document["paths"]?[route.Split(' ')[1]]?[route.Split(' ')[0]] ?? throw new Xunit.Sdk.XunitException($"{route} is not documented");

    private static bool Valid(JsonNode document, JsonNode schema, string json, out string errors)
    {
        var resolved = Resolve(document, schema.DeepClone());
        var validator = JsonSchema.FromText(resolved.ToJsonString(), baseUri: new Uri($"https://schemas.test/{Guid.NewGuid():N}"));
        using var instance = JsonDocument.Parse(json);
        var result = validator.Evaluate(instance.RootElement, new EvaluationOptions { OutputFormat = OutputFormat.List });
        errors = result.IsValid ? "" : $"{json}\n" + string.Join("\n", (result.Details ?? []).Where(d => d.Errors is { Count: > 0 })
            .Select(d => $"{d.InstanceLocation}: {string.Join("; ", d.Errors!.Values)}"));
        return result.IsValid;
    }

    /// <summary>
    /// The schema as a standalone JSON Schema: the document's component schemas carried along as <c>$defs</c> and every
    /// <c>#/components/schemas/X</c> reference pointed at them, so recursive schemas (a split job's parts) resolve.
    /// </summary>
    private static JsonNode Resolve(JsonNode document, JsonNode schema)
    {
        var resolved = Repoint(schema);
        if (resolved is JsonObject obj)
        {
            obj["$defs"] = Repoint(document["components"]!["schemas"]!.DeepClone());
        }

        return resolved;
    }

    private static JsonNode Repoint(JsonNode node)
    {
        switch (node)
        {
            case JsonObject obj:
                foreach (var key in obj.Select(p => p.Key).ToList())
                {
                    if (key == "$ref" && obj[key]?.GetValue<string>() is { } reference)
                    {
                        obj[key] = reference.Replace("#/components/schemas/", "#/$defs/", StringComparison.Ordinal);
                    }
                    else if (obj[key] is { } child)
                    {
                        obj[key] = Repoint(child.DeepClone());
                    }
                }

                return obj;
            case JsonArray array:
                for (var i = 0; i < array.Count; i++)
                {
                    if (array[i] is { } item)
                    {
                        array[i] = Repoint(item.DeepClone());
                    }
                }

                return array;
            default:
                return node;
        }
    }
}
