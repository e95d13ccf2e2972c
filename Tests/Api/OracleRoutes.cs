using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Api;

/// <summary>
/// The oracles through HTTP, for any front and model: <c>/embed</c> on every text of <c>embed-public.json</c> and
/// <c>/bertscore</c> on each run of <c>bertscore-public.json</c>, within 1e-5 of sentence-transformers and bert_score.
/// The oracles were made with all-MiniLM-L6-v2; a model served under another name gives the same numbers (its name
/// shows in the hash).
/// </summary>
internal static class OracleRoutes
{
    /// <summary>The name the bert_score oracle's hashes carry.</summary>
    public const string OracleModel = "sentence-transformers/all-MiniLM-L6-v2";

    public static TheoryData<string> Runs => ["L6_noidf", "L4_noidf", "L4_idf", "L4_noidf_rescaled"];

    public static async Task<JsonElement> PostAsync(HttpClient http, string path, object body, HttpStatusCode expected = HttpStatusCode.OK)
    {
        using var response = await http.PostAsJsonAsync(path, body, TestContext.Current.CancellationToken);
        var text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.True(expected == response.StatusCode, $"{(int)response.StatusCode}: {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    /// <summary><c>/embed</c> of every oracle text (<paramref name="model"/> null: the default model), answered as <paramref name="answeredModel"/>.</summary>
    public static async Task AssertEmbedOracleAsync(HttpClient http, string? model, string answeredModel)
    {
        var oracle = Oracles.Embed;
        var worst = 0.0;
        foreach (var chunk in Enumerable.Range(0, oracle.Texts.Length).Chunk(100))
        {
            var texts = chunk.Select(i => oracle.Texts[i]).ToArray();
            var body = await PostAsync(http, "/embed", model is null ? new { texts } : new { texts, model });
            Assert.Equal(384, body.GetProperty("dimensions").GetInt32());
            Assert.Equal(answeredModel, body.GetProperty("model").GetString());
            var rows = body.GetProperty("embeddings");
            Assert.Equal(chunk.Length, rows.GetArrayLength());
            for (var k = 0; k < chunk.Length; k++)
            {
                var d = 0;
                foreach (var v in rows[k].EnumerateArray())
                {
                    worst = Math.Max(worst, Math.Abs(v.GetSingle() - oracle.Embeddings[chunk[k]][d++]));
                }
            }
        }

        Assert.True(worst <= 1e-5, $"max |Δ| = {worst:E2}");
    }

    /// <summary><c>/bertscore</c> of one oracle run (layer, idf, rescaling) with <paramref name="model"/>.</summary>
    public static async Task AssertBertScoreRunAsync(HttpClient http, string run, string model)
    {
        var oracle = Oracles.BertScore;
        var expected = oracle.Runs[run];
        var request = new JsonObject
        {
            ["candidates"] = new JsonArray([.. oracle.Candidates.Select(c => JsonValue.Create(c))]),
            ["references"] = new JsonArray([.. oracle.References.Select(r => JsonValue.Create(r))]),
            ["model_type"] = model,
            ["idf"] = run.Contains("_idf", StringComparison.Ordinal),
        };
        if (run.StartsWith("L4", StringComparison.Ordinal))
        {
            request["num_layers"] = 4;
        }

        if (run.EndsWith("rescaled", StringComparison.Ordinal))
        {
            request["rescale_with_baseline"] = true;
            request["baseline"] = new JsonObject { ["precision"] = 0.59, ["recall"] = 0.60, ["f1"] = 0.595 };
        }

        var body = await PostAsync(http, "/bertscore", request);
        Compare(expected.P, body.GetProperty("precision"));
        Compare(expected.R, body.GetProperty("recall"));
        Compare(expected.F, body.GetProperty("f1"));
        Assert.Equal(expected.Hash.Replace(OracleModel, model, StringComparison.Ordinal), body.GetProperty("hash").GetString());
        Assert.Equal(run.StartsWith("L4", StringComparison.Ordinal) ? 4 : 6, body.GetProperty("num_layers").GetInt32());
    }

    public static void Compare(float[] expected, JsonElement actual)
    {
        Assert.Equal(expected.Length, actual.GetArrayLength());
        var worst = 0.0;
        for (var i = 0; i < expected.Length; i++)
        {
            worst = Math.Max(worst, Math.Abs(expected[i] - actual[i].GetSingle()));
        }

        Assert.True(worst <= 1e-5, $"max |Δ| = {worst:E2}");
    }
}
