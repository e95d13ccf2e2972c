using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Api;

/// <summary>
/// The default limits accept what real clients send: OpenAI's 2,048 inputs in one request (the Vercel AI SDK's batch),
/// and a text of any length, cut at the model's window as sentence-transformers cuts it.
/// </summary>
[Collection(FrontCollection.Name)]
public sealed class LimitsTests(FrontFixture fixture)
{
    [Fact]
    public async Task Two_thousand_and_forty_eight_inputs_in_one_request_equal_sentence_transformers()
    {
        var oracle = Oracles.Embed;
        var indices = Enumerable.Range(0, 2048).Select(i => i % oracle.Texts.Length).ToArray();
        using var http = fixture.Client();
        using var response = await http.PostAsJsonAsync("/v1/embeddings", new { input = indices.Select(i => oracle.Texts[i]).ToArray() }, TestContext.Current.CancellationToken);
        var text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        using var body = JsonDocument.Parse(text);
        var data = body.RootElement.GetProperty("data");
        Assert.Equal(2048, data.GetArrayLength());
        var worst = 0.0;
        for (var k = 0; k < 2048; k++)
        {
            Assert.Equal(k, data[k].GetProperty("index").GetInt32());
            var d = 0;
            foreach (var v in data[k].GetProperty("embedding").EnumerateArray())
            {
                worst = Math.Max(worst, Math.Abs(v.GetSingle() - oracle.Embeddings[indices[k]][d++]));
            }
        }

        Assert.True(worst <= 1e-5, $"max |Δ| = {worst:E2}");

        // usage counts the tokens the model read: the oracle's token ids, special tokens included.
        var tokens = indices.Sum(i => (long)oracle.InputIds[i].Length);
        Assert.Equal(tokens, body.RootElement.GetProperty("usage").GetProperty("prompt_tokens").GetInt64());
    }

    [Fact]
    public async Task A_text_of_100000_characters_is_cut_at_the_window_like_sentence_transformers()
    {
        // The oracle's longest text already fills MiniLM's 256 tokens: whatever follows it is cut away, so the long
        // text's embedding is the oracle's for that text.
        var oracle = Oracles.Embed;
        var longest = Enumerable.Range(0, oracle.Texts.Length).Where(i => oracle.InputIds[i].Length == 256).MaxBy(i => oracle.Texts[i].Length);
        var text = oracle.Texts[longest] + " " + string.Concat(Enumerable.Repeat("and then the text goes on and on. ", 3000));
        Assert.True(text.Length >= 100_000);

        using var http = fixture.Client();
        using var response = await http.PostAsJsonAsync("/embed", new { texts = new[] { text } }, TestContext.Current.CancellationToken);
        var body = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        var vector = JsonDocument.Parse(body).RootElement.GetProperty("embeddings")[0].EnumerateArray().Select(v => v.GetSingle()).ToArray();
        Assert.Equal(oracle.Embeddings[longest].Length, vector.Length);
        var worst = vector.Select((v, d) => Math.Abs(v - oracle.Embeddings[longest][d])).Max();
        Assert.True(worst <= 1e-5, $"max |Δ| = {worst:E2}");

        // With truncation off the same text is refused by the host's tokenizer, with the counts, as a 400.
        using var refused = await http.PostAsJsonAsync("/embed", new { texts = new[] { "short", text }, truncate = false }, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        using var error = JsonDocument.Parse(await refused.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
        Assert.Equal("input_too_long", error.RootElement.GetProperty("code").GetString());
        Assert.Contains("Text 1 has", error.RootElement.GetProperty("detail").GetString());
        Assert.Contains("at most 256", error.RootElement.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task Dimensions_below_the_model_cut_and_renormalise_as_OpenAI_does()
    {
        using var http = fixture.Client();
        var full = await EmbeddingAsync(http, new { input = "Matryoshka dolls nest inside each other." });
        var cut = await EmbeddingAsync(http, new { input = "Matryoshka dolls nest inside each other.", dimensions = 64 });
        Assert.Equal(384, full.Length);
        Assert.Equal(64, cut.Length);
        var norm = Math.Sqrt(full.Take(64).Sum(v => (double)v * v));
        for (var d = 0; d < 64; d++)
        {
            Assert.Equal(full[d] / norm, cut[d], 1e-6);
        }

        Assert.Equal(1.0, Math.Sqrt(cut.Sum(v => (double)v * v)), 1e-5);
    }

    [Fact]
    public async Task Models_lists_the_served_embedding_models_in_OpenAI_shape()
    {
        using var http = fixture.Client();
        using var body = JsonDocument.Parse(await http.GetStringAsync("/v1/models", TestContext.Current.CancellationToken));
        Assert.Equal("list", body.RootElement.GetProperty("object").GetString());
        var models = body.RootElement.GetProperty("data").EnumerateArray().ToList();
        Assert.Contains(models, m => m.GetProperty("id").GetString() == "sentence-transformers/all-MiniLM-L6-v2");
        Assert.All(models, m => Assert.Equal("model", m.GetProperty("object").GetString()));
        Assert.All(models, m => Assert.True(m.GetProperty("created").GetInt64() > 0));
    }

    private static async Task<float[]> EmbeddingAsync(HttpClient http, object request)
    {
        using var response = await http.PostAsJsonAsync("/v1/embeddings", request, TestContext.Current.CancellationToken);
        var text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        return [.. JsonDocument.Parse(text).RootElement.GetProperty("data")[0].GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle())];
    }
}
