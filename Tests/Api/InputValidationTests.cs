using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace OrleansGpu.Tests.Api;

/// <summary>Every malformed body gets a 4xx JSON error that says what is wrong, and the server stays up.</summary>
[Collection(FrontCollection.Name)]
public sealed class InputValidationTests(FrontFixture fixture)
{
    private async Task<(HttpStatusCode Status, JsonElement Body, HttpResponseMessage Response)> SendAsync(string path, HttpContent content)
    {
        using var http = fixture.Client();
        var response = await http.PostAsync(path, content, TestContext.Current.CancellationToken);
        var text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        JsonElement body;
        try
        {
            body = JsonDocument.Parse(text).RootElement.Clone();
        }
        catch (JsonException)
        {
            Assert.Fail($"{(int)response.StatusCode} with a body that is not JSON: {text}");
            throw;
        }

        return (response.StatusCode, body, response);
    }

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    public static TheoryData<string, string, string> BadBodies => new()
    {
        { "/embed", "{", "not valid JSON" },
        { "/embed", "", "empty" },
        { "/embed", "[1,2]", "JSON object" },
        { "/embed", "\"texts\"", "JSON object" },
        { "/embed", "{}", "'texts' is required" },
        { "/embed", """{"texts": null}""", "'texts' is required" },
        { "/embed", """{"texts": "one string"}""", "must be an array" },
        { "/embed", """{"texts": []}""", "must not be empty" },
        { "/embed", """{"texts": ["ok", null]}""", "'texts[1]' must be a string" },
        { "/embed", """{"texts": [{"a":1}]}""", "'texts[0]' must be a string" },
        { "/embed", """{"texts": ["a"], "model": 5}""", "'model' must be a string" },
        { "/embed", """{"texts": ["a"], "normalize": "yes"}""", "'normalize' must be true or false" },
        { "/embed", """{"texts": ["a"], "model": "../../etc/passwd"}""", "not a model name" },
        { "/bertscore", """{"candidates": ["a", "b"], "references": ["a"]}""", "pair up" },
        { "/bertscore", """{"candidates": ["a"]}""", "'references' is required" },
        { "/bertscore", """{"candidates": ["a"], "references": [["x"], "y"]}""", "'references[1]' must be an array" },
        { "/bertscore", """{"candidates": ["a"], "references": [[]]}""", "must not be empty" },
        { "/bertscore", """{"candidates": ["a"], "references": ["b"], "model": "all-MiniLM-L6-v2", "num_layers": 99}""", "num_layers" },
        { "/bertscore", """{"candidates": ["a"], "references": ["b"], "num_layers": -1}""", "'num_layers' must be between" },
        { "/bertscore", """{"candidates": ["a"], "references": ["b"], "num_layers": 1.5}""", "'num_layers' must be an integer" },
        { "/bertscore", """{"candidates": ["a"], "references": ["b"], "idf": 1}""", "'idf' must be true or false" },
        { "/bertscore", """{"candidates": ["a"], "references": ["b"], "model": "all-MiniLM-L6-v2", "rescale_with_baseline": true}""", "baseline" },
        { "/bertscore", """{"candidates": ["a"], "references": ["b"], "baseline": {"precision": 1, "recall": 0.5, "f1": 0.5}}""", "below 1" },
        { "/bertscore", """{"candidates": ["a"], "references": ["b"], "baseline": {"precision": "x"}}""", "'baseline.precision' must be a number" },
        { "/v1/embeddings", """{"model": "all-MiniLM-L6-v2"}""", "'input' is required" },
        { "/v1/embeddings", """{"input": [[-1]]}""", "not a cl100k_base token id" },
        { "/v1/embeddings", """{"input": [[1, "x"]]}""", "not a cl100k_base token id" },
        { "/v1/embeddings", """{"input": "x", "encoding_format": "hex"}""", "encoding_format" },
    };

    [Theory]
    [MemberData(nameof(BadBodies))]
    public async Task A_malformed_body_is_a_400_that_says_what_is_wrong(string path, string json, string message)
    {
        var (status, body, _) = await SendAsync(path, Json(json));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        var detail = path.StartsWith("/v1", StringComparison.Ordinal)
            ? body.GetProperty("error").GetProperty("message").GetString()
            : body.GetProperty("detail").GetString();
        Assert.Contains(message, detail);
        await AssertStillUp();
    }

    [Fact]
    public async Task Deep_nesting_is_refused()
    {
        var json = "{\"texts\": " + new string('[', 5000) + new string(']', 5000) + "}";
        var (status, body, _) = await SendAsync("/embed", Json(json));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("depth", body.GetProperty("detail").GetString());
        await AssertStillUp();
    }

    [Fact]
    public async Task Invalid_utf8_is_refused()
    {
        var bytes = Encoding.UTF8.GetBytes("{\"texts\": [\"ab\"]}");
        bytes[12] = 0xFF;
        var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        var (status, body, _) = await SendAsync("/embed", content);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("not valid JSON", body.GetProperty("detail").GetString());
        await AssertStillUp();
    }

    [Fact]
    public async Task Too_many_texts_are_refused_with_the_limit()
    {
        var texts = Enumerable.Repeat("x", 601).ToArray();
        var (status, body, _) = await SendAsync("/embed", Json(JsonSerializer.Serialize(new { texts })));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("at most 600", body.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task Too_long_a_text_is_refused_with_the_limit()
    {
        var (status, body, _) = await SendAsync("/embed", Json(JsonSerializer.Serialize(new { texts = new[] { new string('a', 10_001) } })));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("at most 10000", body.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task A_body_over_the_size_limit_is_a_413()
    {
        var texts = Enumerable.Repeat(new string('b', 9_000), 300).ToArray(); // ~2.7 MB
        var (status, body, _) = await SendAsync("/embed", Json(JsonSerializer.Serialize(new { texts })));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);
        Assert.Equal("body_too_large", body.GetProperty("code").GetString());
        await AssertStillUp();
    }

    [Fact]
    public async Task An_unknown_model_is_a_404_naming_it()
    {
        var (status, body, _) = await SendAsync("/embed", Json("""{"texts": ["a"], "model": "nobody/nothing"}"""));
        Assert.Equal(HttpStatusCode.NotFound, status);
        Assert.Equal("model_not_found", body.GetProperty("code").GetString());
        Assert.Contains("nobody/nothing", body.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task Truncation_can_be_turned_off_and_then_long_texts_are_a_400()
    {
        var text = string.Join(' ', Enumerable.Repeat("word", 400));
        var (status, body, _) = await SendAsync("/embed", Json(JsonSerializer.Serialize(new { texts = new[] { text }, truncate = false })));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("input_too_long", body.GetProperty("code").GetString());
    }

    [Fact]
    public async Task Wrong_method_is_a_json_405()
    {
        using var http = fixture.Client();
        using var response = await http.GetAsync("/embed", TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
        Assert.Contains("not allowed", await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
    }

    private async Task AssertStillUp()
    {
        using var http = fixture.Anonymous();
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/health", TestContext.Current.CancellationToken)).StatusCode);
    }
}
