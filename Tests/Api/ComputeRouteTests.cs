using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Api;

/// <summary>Through HTTP, /embed and /bertscore give the oracles' numbers, as the library does.</summary>
[Collection(FrontCollection.Name)]
public sealed class ComputeRouteTests(FrontFixture fixture)
{
    private static Task<JsonElement> PostAsync(HttpClient http, string path, object body, HttpStatusCode expected = HttpStatusCode.OK) =>
        OracleRoutes.PostAsync(http, path, body, expected);

    [Fact]
    public async Task Embed_equals_sentence_transformers_for_every_oracle_text()
    {
        using var http = fixture.Client();
        await OracleRoutes.AssertEmbedOracleAsync(http, model: null, answeredModel: "all-MiniLM-L6-v2");
    }

    [Fact]
    public async Task Embed_can_skip_normalisation()
    {
        using var http = fixture.Client();
        var body = await PostAsync(http, "/embed", new { texts = new[] { "unnormalised vector" }, normalize = false });
        var norm = Math.Sqrt(body.GetProperty("embeddings")[0].EnumerateArray().Sum(v => v.GetDouble() * v.GetDouble()));
        Assert.NotEqual(1.0, norm, 2);
    }

    public static TheoryData<string> Runs => OracleRoutes.Runs;

    [Theory]
    [MemberData(nameof(Runs))]
    public async Task Bertscore_equals_bert_score_for_every_oracle_run(string run)
    {
        using var http = fixture.Bearer();
        await OracleRoutes.AssertBertScoreRunAsync(http, run, OracleRoutes.OracleModel);
    }

    [Fact]
    public async Task Bertscore_takes_several_references_per_candidate()
    {
        using var http = fixture.Client();
        var multi = Oracles.BertScore.Multi;
        var body = await PostAsync(http, "/bertscore", new
        {
            candidates = multi.Candidates,
            references = multi.ReferencesMulti,
            model = "all-MiniLM-L6-v2",
            num_layers = multi.NumLayers,
        });
        Compare(multi.P, body.GetProperty("precision"));
        Compare(multi.R, body.GetProperty("recall"));
        Compare(multi.F, body.GetProperty("f1"));
    }

    [Fact]
    public async Task An_undefined_score_is_null_not_a_broken_number()
    {
        using var http = fixture.Client();
        var body = await PostAsync(http, "/bertscore", new { candidates = new[] { "[CLS]" }, references = new[] { "a reference" }, model = "all-MiniLM-L6-v2" });
        Assert.Equal(JsonValueKind.Null, body.GetProperty("precision")[0].ValueKind);
        Assert.Equal(0, body.GetProperty("f1")[0].GetDouble());
    }

    [Fact]
    public async Task OpenAI_embeddings_in_float_and_base64_agree()
    {
        using var http = fixture.Bearer();
        string[] input = ["first text", "second text with more words"];
        var floats = await PostAsync(http, "/v1/embeddings", new { input, model = "all-MiniLM-L6-v2" });
        using var response = await http.PostAsJsonAsync("/v1/embeddings", new { input, model = "all-MiniLM-L6-v2", encoding_format = "base64" }, TestContext.Current.CancellationToken);
        var raw = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.DoesNotContain("\\u002B", raw);
        var b64 = JsonDocument.Parse(raw).RootElement;

        Assert.Equal("list", floats.GetProperty("object").GetString());
        Assert.Equal(2, floats.GetProperty("data").GetArrayLength());
        for (var i = 0; i < 2; i++)
        {
            Assert.Equal(i, b64.GetProperty("data")[i].GetProperty("index").GetInt32());
            var bytes = Convert.FromBase64String(b64.GetProperty("data")[i].GetProperty("embedding").GetString()!);
            var decoded = new float[bytes.Length / 4];
            Buffer.BlockCopy(bytes, 0, decoded, 0, bytes.Length);
            var asFloats = floats.GetProperty("data")[i].GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()).ToArray();
            Assert.Equal(asFloats, decoded);
        }

        Assert.True(floats.GetProperty("usage").GetProperty("total_tokens").GetInt32() > 0);
    }

    [Fact]
    public async Task OpenAI_token_ids_are_read_as_the_text_they_encode()
    {
        using var http = fixture.Client();
        var cl100k = Microsoft.ML.Tokenizers.TiktokenTokenizer.CreateForEncoding("cl100k_base");
        string[] texts = ["The weather is lovely today.", "Token ids from LangChain"];
        var ids = texts.Select(t => cl100k.EncodeToIds(t).ToArray()).ToArray();

        var fromIds = await PostAsync(http, "/v1/embeddings", new { input = ids, model = "all-MiniLM-L6-v2" });
        var fromText = await PostAsync(http, "/v1/embeddings", new { input = texts, model = "all-MiniLM-L6-v2" });
        var single = await PostAsync(http, "/v1/embeddings", new { input = ids[0], model = "all-MiniLM-L6-v2" });

        for (var i = 0; i < texts.Length; i++)
        {
            Assert.Equal(
                fromText.GetProperty("data")[i].GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()),
                fromIds.GetProperty("data")[i].GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()));
        }

        Assert.Equal(1, single.GetProperty("data").GetArrayLength());
    }

    [Fact]
    public async Task A_full_queue_answers_503_with_retry_after_and_the_rest_succeed()
    {
        using var http = fixture.Client();
        var texts = Enumerable.Range(0, 150).Select(i => string.Join(' ', Enumerable.Repeat($"queue {i}", 25))).ToArray();
        var responses = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ =>
            http.PostAsync("/embed", new StringContent(JsonSerializer.Serialize(new { texts }), Encoding.UTF8, "application/json"), TestContext.Current.CancellationToken)));

        var busy = responses.Where(r => r.StatusCode == HttpStatusCode.ServiceUnavailable).ToList();
        Assert.NotEmpty(busy);
        Assert.All(busy, r => Assert.Equal("5", r.Headers.RetryAfter?.Delta?.TotalSeconds.ToString()));
        Assert.All(responses, r => Assert.True(r.StatusCode is HttpStatusCode.OK or HttpStatusCode.ServiceUnavailable, r.StatusCode.ToString()));
        Assert.Contains(responses, r => r.StatusCode == HttpStatusCode.OK);
        using var error = JsonDocument.Parse(await busy[0].Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
        Assert.Equal("busy", error.RootElement.GetProperty("code").GetString());
        var host = responses.First(r => r.StatusCode == HttpStatusCode.OK).Headers.GetValues("X-Gpu-Host").Single();
        Assert.Contains($"Host {host} is busy", error.RootElement.GetProperty("detail").GetString());
    }

    private static void Compare(float[] expected, JsonElement actual) => OracleRoutes.Compare(expected, actual);
}
