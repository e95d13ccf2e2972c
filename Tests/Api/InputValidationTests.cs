using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace OrleansGpu.Tests.Api;

/// <summary>Every malformed body gets a 4xx JSON error that says what is wrong, and the server stays up.</summary>
[Collection(FrontCollection.Name)]
public sealed class InputValidationTests(FrontFixture fixture)
{
    private async Task<(HttpStatusCode Status, JsonElement Body, HttpResponseMessage Response)> SendAsync(string path, HttpContent content, bool chunked = false)
    {
        using var http = fixture.Client();
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = content };
        request.Headers.TransferEncodingChunked = chunked;
        var response = await http.SendAsync(request, TestContext.Current.CancellationToken);
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
        var texts = Enumerable.Repeat("x", 2049).ToArray();
        var (status, body, _) = await SendAsync("/embed", Json(JsonSerializer.Serialize(new { texts })));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("at most 2048", body.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task Bertscore_counts_candidates_and_references_together_per_request()
    {
        // 100 candidates with 100 references each: 10,100 texts, over the 2,048 of one request (not "100 pairs").
        var candidates = Enumerable.Range(0, 100).Select(i => $"c{i}").ToArray();
        var references = candidates.Select(_ => Enumerable.Range(0, 100).Select(j => $"r{j}").ToArray()).ToArray();
        var (status, body, _) = await SendAsync("/bertscore", Json(JsonSerializer.Serialize(new { candidates, references })));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("10100 texts", body.GetProperty("detail").GetString());
        Assert.Contains("at most 2048", body.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task Token_ids_count_against_the_input_limit()
    {
        var input = Enumerable.Repeat(new[] { 1, 2, 3 }, 2049).ToArray();
        var (status, body, _) = await SendAsync("/v1/embeddings", Json(JsonSerializer.Serialize(new { input })));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("at most 2048", body.GetProperty("error").GetProperty("message").GetString());
        Assert.Equal("input", body.GetProperty("error").GetProperty("param").GetString());
    }

    [Fact]
    public void A_configured_text_length_limit_applies_to_texts_and_token_ids_alike()
    {
        var limits = new OrleansGpu.Api.Http.RequestLimits { MaxTextLength = 5 };
        var tooLong = Assert.Single(OrleansGpu.Api.Contracts.RequestRules.TextLengths(["short", "longer"], "texts", limits));
        Assert.Equal("'texts[1]' has 6 characters; at most 5 are allowed (GPU_MAX_TEXT_LENGTH).", tooLong.ErrorMessage);
        Assert.Empty(OrleansGpu.Api.Contracts.RequestRules.TextLengths([new string('a', 100_000)], "texts", new OrleansGpu.Api.Http.RequestLimits()));
    }

    public static TheoryData<string, string, string> LoneSurrogates => new()
    {
        { "/embed", """{"texts": ["fine", "bad \ud800 text"]}""", "'texts[1]'" },
        { "/embed", """{"texts": ["a"], "model": "\udfff"}""", "'model'" },
        { "/embed", """{"texts": ["a"], "\ud83d": 1}""", "property name" },
        { "/bertscore", """{"candidates": ["a"], "references": [["b", "\udc00"]]}""", "'references[0][1]'" },
        { "/bertscore", """{"candidates": ["a"], "references": ["b"], "baseline": {"\ud800x": 1}}""", "property name in 'baseline'" },
        { "/v1/embeddings", """{"input": "\ud800"}""", "'input'" },
        { "/v1/embeddings", """{"input": ["a"], "model": "x\udbff"}""", "'model'" },
    };

    [Theory]
    [MemberData(nameof(LoneSurrogates))]
    public async Task A_lone_surrogate_anywhere_is_a_400_naming_the_field(string path, string json, string where)
    {
        var (status, body, _) = await SendAsync(path, Json(json));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        var error = path.StartsWith("/v1", StringComparison.Ordinal) ? body.GetProperty("error") : body;
        var message = error.GetProperty(path.StartsWith("/v1", StringComparison.Ordinal) ? "message" : "detail").GetString();
        Assert.Contains("invalid Unicode", message);
        Assert.Contains(where, message);
        Assert.Equal("invalid_unicode", error.GetProperty("code").GetString());
        await AssertStillUp();
    }

    [Theory]
    [InlineData(-1e300)]
    [InlineData(1.0)]
    [InlineData(-1.5)]
    public async Task A_baseline_out_of_range_is_refused(double precision)
    {
        var json = JsonSerializer.Serialize(new { candidates = new[] { "a" }, references = new[] { "b" }, baseline = new { precision, recall = 0.5, f1 = 0.5 } });
        var (status, body, _) = await SendAsync("/bertscore", Json(json));
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("'baseline.precision' must be at least -1 and below 1", body.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task A_chunked_body_of_exactly_the_limit_is_read_like_the_same_body_with_a_length()
    {
        var body = ExactlyTheLimit();
        var chunked = new StreamContent(new MemoryStream(body));
        chunked.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        var (chunkedStatus, _, _) = await SendAsync("/embed", chunked, chunked: true);
        var (lengthStatus, _, _) = await SendAsync("/embed", new ByteArrayContent(body) { Headers = { ContentType = new MediaTypeHeaderValue("application/json") } });
        Assert.Equal(HttpStatusCode.OK, lengthStatus);
        Assert.Equal(HttpStatusCode.OK, chunkedStatus);

        var over = new byte[body.Length + 1];
        body.CopyTo(over, 1);
        over[0] = (byte)' ';
        var (overStatus, overBody, _) = await SendAsync("/embed", new StreamContent(new MemoryStream(over)) { Headers = { ContentType = new MediaTypeHeaderValue("application/json") } }, chunked: true);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, overStatus);
        Assert.Equal("body_too_large", overBody.GetProperty("code").GetString());
    }

    /// <summary>A valid /embed body of exactly the fixture's limit: one short text, padded with spaces.</summary>
    private static byte[] ExactlyTheLimit()
    {
        var json = Encoding.UTF8.GetBytes("""{"texts": ["padded to the limit"]}""");
        var body = new byte[FrontFixture.BodyLimit];
        Array.Fill(body, (byte)' ');
        json.CopyTo(body, 0);
        return body;
    }

    [Fact]
    public async Task A_gzip_body_is_decoded_and_a_zip_bomb_stops_at_the_limit()
    {
        var plain = Encoding.UTF8.GetBytes("""{"texts": ["compressed text"]}""");
        var (status, body, _) = await SendAsync("/embed", Compressed(plain, "gzip"));
        Assert.Equal(HttpStatusCode.OK, status);
        var (uncompressed, reference, _) = await SendAsync("/embed", new ByteArrayContent(plain) { Headers = { ContentType = new MediaTypeHeaderValue("application/json") } });
        Assert.Equal(HttpStatusCode.OK, uncompressed);
        Assert.Equal(reference.GetProperty("embeddings").ToString(), body.GetProperty("embeddings").ToString());

        // 64 MB of spaces inside a valid object compress to about 64 KB: refused once 2 MiB are decompressed.
        var bomb = new byte[64 * 1024 * 1024];
        Array.Fill(bomb, (byte)' ');
        plain.CopyTo(bomb, 0);
        var (bombStatus, bombBody, _) = await SendAsync("/embed", Compressed(bomb, "gzip"));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, bombStatus);
        Assert.Equal("body_too_large", bombBody.GetProperty("code").GetString());

        var unknown = new ByteArrayContent(plain) { Headers = { ContentType = new MediaTypeHeaderValue("application/json") } };
        unknown.Headers.ContentEncoding.Add("zstd");
        var (unknownStatus, unknownBody, _) = await SendAsync("/embed", unknown);
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, unknownStatus);
        Assert.Contains("zstd", unknownBody.GetProperty("detail").GetString());
        await AssertStillUp();
    }

    private static ByteArrayContent Compressed(byte[] plain, string encoding)
    {
        using var buffer = new MemoryStream();
        using (var gzip = new System.IO.Compression.GZipStream(buffer, System.IO.Compression.CompressionLevel.Fastest, leaveOpen: true))
        {
            gzip.Write(plain);
        }

        var content = new ByteArrayContent(buffer.ToArray());
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        content.Headers.ContentEncoding.Add(encoding);
        return content;
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
