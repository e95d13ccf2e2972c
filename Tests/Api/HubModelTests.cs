using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Api;

/// <summary>
/// A real front process (co-hosting its GPU silo) whose hub is a STAND-IN on loopback: a model is downloaded on
/// first use with its progress in /status and the log, then served; each refusal is a 4xx/503 that says what to do
/// and shows no server path.
/// </summary>
public sealed class HubModelTests : IAsyncLifetime
{
    private HubFront _setup = null!;

    public async ValueTask InitializeAsync() => _setup = await HubFront.StartAsync("front-hf-cache-", (hub, _) =>
    {
        hub.Add("acme/minilm-st", TestRepos.MiniLmSentenceTransformers());
        hub.Add("acme/gated", TestRepos.MiniLmSentenceTransformers(), gated: true);
    });

    public ValueTask DisposeAsync() => _setup.DisposeAsync();

    [Fact]
    public async Task Stand_in_hub_a_model_is_downloaded_on_first_use_with_progress_then_served_and_each_refusal_says_what_to_do()
    {
        var ct = TestContext.Current.CancellationToken;
        using var http = new HttpClient { BaseAddress = _setup.Front.BaseAddress, Timeout = TimeSpan.FromMinutes(3) };
        string[] texts = ["The weather is lovely today.", "It's so sunny outside!"];

        // First use downloads (slowly here, so that /status can be watched), then embeds.
        _setup.Hub.CdnBytesPerSecond = 4_000_000;
        var first = http.PostAsJsonAsync("/embed", new { texts, model = "acme/minilm-st" }, ct);
        var download = await WaitForDownloadAsync(http, ct);
        Assert.Equal("download", download.GetProperty("type").GetString());
        Assert.Equal("acme/minilm-st", download.GetProperty("model").GetString());
        Assert.Equal("downloading", download.GetProperty("state").GetString());
        var total = download.GetProperty("bytes_total").GetInt64();
        Assert.InRange(download.GetProperty("bytes_done").GetInt64(), 0, total - 1);
        Assert.True(total > TestRepos.MiniLmOnnx.Length, $"bytes_total {total} covers the ONNX file and the settings");
        _setup.Hub.CdnBytesPerSecond = 0;

        using var downloaded = await first;
        Assert.Equal(HttpStatusCode.OK, downloaded.StatusCode);
        var fromHub = await downloaded.Content.ReadFromJsonAsync<JsonElement>(ct);
        using var bundled = await http.PostAsJsonAsync("/embed", new { texts }, ct);
        var fromPackage = await bundled.Content.ReadFromJsonAsync<JsonElement>(ct);
        Assert.Equal(fromPackage.GetProperty("embeddings").ToString(), fromHub.GetProperty("embeddings").ToString());
        Assert.Contains("Downloading acme/minilm-st from", _setup.Front.Output);
        Assert.Contains("Downloaded acme/minilm-st", _setup.Front.Output);

        // Served from then on without another download.
        using (var again = await http.PostAsJsonAsync("/embed", new { texts, model = "acme/minilm-st" }, ct))
        {
            Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        }

        Assert.Single(_setup.Hub.CdnGets(TestRepos.MiniLmOnnx));

        // Gated: 403 with the token to set and the page where the licence is accepted.
        var gated = await ProblemAsync(http, "acme/gated", HttpStatusCode.Forbidden, "model_gated", ct);
        Assert.Contains("HF_TOKEN", gated);
        Assert.Contains($"{_setup.Hub.Endpoint}/acme/gated", gated);

        // Unknown to the hub: 404 that says to check the name.
        var unknown = await ProblemAsync(http, "acme/no-such-model", HttpStatusCode.NotFound, "model_not_found", ct);
        Assert.Contains("Check the name", unknown);

        // Not allowed: 403 naming the setting.
        var refused = await ProblemAsync(http, "someone/else", HttpStatusCode.Forbidden, "model_not_allowed", ct);
        Assert.Contains("MODEL_ALLOW", refused);

        // OpenAI's route answers the same in OpenAI's error shape.
        using (var openAi = await http.PostAsJsonAsync("/v1/embeddings", new { input = "x", model = "acme/gated" }, ct))
        {
            Assert.Equal(HttpStatusCode.Forbidden, openAi.StatusCode);
            var error = (await openAi.Content.ReadFromJsonAsync<JsonElement>(ct)).GetProperty("error");
            Assert.Equal("model_gated", error.GetProperty("code").GetString());
        }

        // The hub goes away: 503 with Retry-After that says how to do without it.
        await _setup.Hub.StopAsync();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/embed") { Content = JsonContent.Create(new { texts, model = "acme/never-seen" }) };
        using var response = await http.SendAsync(request, ct);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.True(response.Headers.Contains("Retry-After"));
        var body = await response.Content.ReadFromJsonAsync<JsonElement>(ct);
        Assert.Equal("hub_unreachable", body.GetProperty("code").GetString());
        var detail = body.GetProperty("detail").GetString()!;
        Assert.Contains("cannot be reached", detail);
        Assert.Contains("HF_ENDPOINT", detail);
        AssertNoServerPath(detail);

        // The downloaded model is still served: it is in the cache.
        using var cached = await http.PostAsJsonAsync("/embed", new { texts, model = "acme/minilm-st" }, ct);
        Assert.Equal(HttpStatusCode.OK, cached.StatusCode);
    }

    private async Task<string> ProblemAsync(HttpClient http, string model, HttpStatusCode status, string code, CancellationToken ct)
    {
        using var response = await http.PostAsJsonAsync("/embed", new { texts = new[] { "x" }, model }, ct);
        var body = await response.Content.ReadFromJsonAsync<JsonElement>(ct);
        Assert.True(status == response.StatusCode, $"{model}: {(int)response.StatusCode} {body}");
        Assert.Equal(code, body.GetProperty("code").GetString());
        var detail = body.GetProperty("detail").GetString()!;
        Assert.Contains(model, detail);
        AssertNoServerPath(detail);
        return detail;
    }

    private void AssertNoServerPath(string detail)
    {
        Assert.DoesNotContain(_setup.Cache, detail);
        Assert.DoesNotContain(_setup.Models.Directory, detail);
        Assert.DoesNotContain(Path.GetTempPath(), detail);
    }

    private static async Task<JsonElement> WaitForDownloadAsync(HttpClient http, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            var status = await http.GetFromJsonAsync<JsonElement>("/status", ct);
            foreach (var job in status.GetProperty("active_jobs").EnumerateArray())
            {
                if (job.GetProperty("type").GetString() == "download" && job.GetProperty("bytes_done").GetInt64() > 0)
                {
                    return job;
                }
            }

            await Task.Delay(100, ct);
        }

        throw new TimeoutException("/status never showed the download.");
    }
}
