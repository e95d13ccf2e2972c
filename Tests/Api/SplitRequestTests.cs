using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Api;

/// <summary>
/// Two GPU hosts as real processes (the front co-hosting one, a Silo.Gpu joining it over localhost clustering) and a
/// split threshold of 60 texts: large requests to every compute route run in one part per host, over HTTP.
/// </summary>
public sealed class SplitRequestTests(SplitRequestTests.TwoHosts hosts) : IClassFixture<SplitRequestTests.TwoHosts>
{
    [Fact]
    public async Task A_large_embed_runs_on_both_hosts_and_equals_sentence_transformers()
    {
        using var http = await hosts.IdleClientAsync();
        var oracle = Oracles.Embed;
        var texts = Enumerable.Range(0, 300).Select(i => oracle.Texts[i % oracle.Texts.Length]).ToArray();

        using var response = await http.PostAsJsonAsync("/embed", new { texts }, TestContext.Current.CancellationToken);
        var body = await ReadAsync(response);

        Assert.Equal(["split-a", "split-b"], PartHosts(response).Order());
        var rows = body.GetProperty("embeddings");
        Assert.Equal(300, rows.GetArrayLength());
        Assert.True(MaxDelta(rows, i => oracle.Embeddings[i % oracle.Texts.Length]) <= 1e-5);
    }

    [Fact]
    public async Task A_large_openai_request_runs_on_both_hosts_in_order_with_the_tokens_of_every_part()
    {
        using var http = await hosts.IdleClientAsync();
        var oracle = Oracles.Embed;
        var input = Enumerable.Range(0, 200).Select(i => oracle.Texts[(i * 7) % oracle.Texts.Length]).ToArray();

        using var response = await http.PostAsJsonAsync("/v1/embeddings", new { input, model = "all-MiniLM-L6-v2" }, TestContext.Current.CancellationToken);
        var body = await ReadAsync(response);

        Assert.Equal(["split-a", "split-b"], PartHosts(response).Order());
        var data = body.GetProperty("data");
        Assert.Equal(Enumerable.Range(0, 200), data.EnumerateArray().Select(d => d.GetProperty("index").GetInt32()));
        Assert.True(MaxDelta(data, i => oracle.Embeddings[(i * 7) % oracle.Texts.Length], d => d.GetProperty("embedding")) <= 1e-5);
        var tokens = input.Sum(t => oracle.InputIds[Array.IndexOf(oracle.Texts, t)].Length);
        Assert.Equal(tokens, body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
    }

    [Fact]
    public async Task A_large_bertscore_with_idf_runs_on_both_hosts_and_equals_bert_score()
    {
        using var http = await hosts.IdleClientAsync();
        var oracle = Oracles.BertScore;
        var expected = oracle.Runs["L4_idf"];
        var request = new JsonObject
        {
            ["candidates"] = new JsonArray([.. oracle.Candidates.Select(c => JsonValue.Create(c))]),
            ["references"] = new JsonArray([.. oracle.References.Select(r => JsonValue.Create(r))]),
            ["model_type"] = "sentence-transformers/all-MiniLM-L6-v2",
            ["num_layers"] = 4,
            ["idf"] = true,
        };

        using var response = await http.PostAsJsonAsync("/bertscore", request, TestContext.Current.CancellationToken);
        var body = await ReadAsync(response);

        Assert.Equal(["split-a", "split-b"], PartHosts(response).Order());
        Assert.Equal(expected.Hash, body.GetProperty("hash").GetString());
        foreach (var (name, values) in new[] { ("precision", expected.P), ("recall", expected.R), ("f1", expected.F) })
        {
            var actual = body.GetProperty(name).EnumerateArray().Select(v => v.GetSingle()).ToArray();
            Inference.BertScore.BertScoreOracleTests.AssertClose(values, actual, name);
        }
    }

    [Fact]
    public async Task Status_shows_a_split_request_as_one_job_with_its_parts_and_the_hosts_log_which_part_they_run()
    {
        var ct = TestContext.Current.CancellationToken;
        using var http = await hosts.IdleClientAsync();
        var texts = Enumerable.Range(0, 400).Select(i => string.Join(' ', Enumerable.Repeat($"status of part {i}", 12))).ToArray();
        var request = http.PostAsJsonAsync("/embed", new { texts }, ct);

        JsonElement? seen = null;
        while (!request.IsCompleted && seen is null)
        {
            using var status = JsonDocument.Parse(await http.GetStringAsync("/status", ct));
            seen = status.RootElement.GetProperty("active_jobs").EnumerateArray()
                .Where(j => j.TryGetProperty("parts", out var p) && p.GetArrayLength() == 2 && j.GetProperty("state").GetString() == "running")
                .Select(j => (JsonElement?)j.Clone())
                .FirstOrDefault();
            await Task.Delay(100, ct);
        }

        using var response = await request;
        await ReadAsync(response);
        Assert.NotNull(seen);
        var job = seen.Value;
        var id = job.GetProperty("id").GetString();
        Assert.Equal(400, job.GetProperty("items").GetInt32());
        Assert.Equal("embed", job.GetProperty("type").GetString());
        Assert.InRange(job.GetProperty("progress").GetDouble(), 0.0, 1.0);
        var parts = job.GetProperty("parts").EnumerateArray().ToList();
        Assert.Equal(["split-a", "split-b"], parts.Select(p => p.GetProperty("host").GetString()).Order());
        Assert.Equal([1, 2], parts.Select(p => p.GetProperty("part_of").GetProperty("part").GetInt32()));
        Assert.All(parts, p => Assert.Equal(id, p.GetProperty("part_of").GetProperty("request_id").GetString()));
        Assert.Equal(400, parts.Sum(p => p.GetProperty("items").GetInt32()));

        // Each host's progress lines say which part of which request it runs; the front's say where it sent each part.
        foreach (var (process, host) in new[] { (hosts.Front, "split-a"), (hosts.Silo, "split-b") })
        {
            Assert.Matches($@"\[embed\] job=\w+ part [12]/2 of request={id} on {host} batch \d+/\d+", process.Output);
        }

        Assert.Matches($@"\[embed\] request={id} part 1/2 \(200 items\) → split-", hosts.Front.Output);
    }

    private static IEnumerable<string> PartHosts(HttpResponseMessage response) =>
        string.Join(",", response.Headers.GetValues("X-Gpu-Host")).Split(',');

    private static async Task<JsonElement> ReadAsync(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode}: {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    private static double MaxDelta(JsonElement rows, Func<int, float[]> expected, Func<JsonElement, JsonElement>? vector = null)
    {
        var worst = 0.0;
        var i = 0;
        foreach (var row in rows.EnumerateArray())
        {
            var d = 0;
            var want = expected(i++);
            foreach (var v in (vector?.Invoke(row) ?? row).EnumerateArray())
            {
                worst = Math.Max(worst, Math.Abs(v.GetSingle() - want[d++]));
            }
        }

        return worst;
    }

    /// <summary>The front (host split-a, holding localhost membership) and a Silo.Gpu (split-b) that joins it.</summary>
    public sealed class TwoHosts : IAsyncLifetime
    {
        private const string Key = "split-key-0123456789";
        private static readonly TimeSpan RefreshInterval = TimeSpan.FromMilliseconds(200);
        private readonly TestModelsFolder _models = new();

        public ServiceProcess Front { get; private set; } = null!;

        public ServiceProcess Silo { get; private set; } = null!;

        public HttpClient Client()
        {
            var http = new HttpClient { BaseAddress = Front.BaseAddress, Timeout = TimeSpan.FromMinutes(5) };
            http.DefaultRequestHeaders.Add("X-API-Key", Key);
            return http;
        }

        /// <summary>
        /// A client, once no host has a job and the front has read the hosts' loads since: least-busy routing then
        /// sends the parts of the next request to different hosts, as it does on an idle cluster.
        /// </summary>
        public async Task<HttpClient> IdleClientAsync()
        {
            var http = Client();
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (JsonDocument.Parse(await http.GetStringAsync("/status")).RootElement.GetProperty("active_jobs").GetArrayLength() > 0)
            {
                Assert.True(DateTime.UtcNow < deadline, "the hosts did not become idle in 60 s");
                await Task.Delay(100);
            }

            await Task.Delay(RefreshInterval * 3);
            return http;
        }

        public async ValueTask InitializeAsync()
        {
            var primary = ServiceProcess.FreePort();
            Front = ServiceProcess.Start(_models.Directory, new Dictionary<string, string>
            {
                ["API_KEY"] = Key,
                ["GPU_HOST_NAME"] = "split-a",
                ["GPU_SPLIT_MIN_TEXTS"] = "60",
                ["Routing__RefreshInterval"] = RefreshInterval.ToString(),
                ["Cluster__SiloPort"] = primary.ToString(),
                ["Cluster__PrimarySiloPort"] = primary.ToString(),
            });
            Silo = ServiceProcess.Start(_models.Directory, new Dictionary<string, string>
            {
                ["GPU_HOST_NAME"] = "split-b",
                ["Cluster__SiloPort"] = ServiceProcess.FreePort().ToString(),
                ["Cluster__PrimarySiloPort"] = primary.ToString(),
                ["Cluster__GatewayPort"] = ServiceProcess.FreePort().ToString(),
            }, project: "Silo.Gpu");
            await Front.WaitUntilHealthyAsync(TimeSpan.FromSeconds(120));

            using var http = Client();
            var deadline = DateTime.UtcNow.AddSeconds(120);
            while (JsonDocument.Parse(await http.GetStringAsync("/health")).RootElement.GetProperty("hosts").GetInt32() < 2)
            {
                Assert.True(DateTime.UtcNow < deadline, $"split-b did not join:\n{Silo.Output}");
                await Task.Delay(250);
            }
        }

        public async ValueTask DisposeAsync()
        {
            await Silo.DisposeAsync();
            await Front.DisposeAsync();
            _models.Dispose();
        }
    }
}
