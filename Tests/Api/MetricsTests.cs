using System.Net;
using System.Net.Http.Json;
using System.Text.RegularExpressions;

namespace OrleansGpu.Tests.Api;

/// <summary>/metrics as Prometheus users read it: per-model inference series, and HTTP series that clients cannot multiply.</summary>
[Collection(FrontCollection.Name)]
public sealed partial class MetricsTests(FrontFixture fixture)
{
    private const string MiniLm = "model=\"sentence-transformers/all-MiniLM-L6-v2\",task=\"embed\"";

    [Fact]
    public async Task After_an_embed_the_per_model_series_carry_the_model_label()
    {
        var ct = TestContext.Current.CancellationToken;
        using var http = fixture.Client();
        using var response = await http.PostAsJsonAsync("/embed", new { texts = new[] { "one short text", "and a second, somewhat longer text to pad against" } }, ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var metrics = await http.GetStringAsync("/metrics", ct);
        foreach (var histogram in new[] { "queue_seconds", "forward_seconds", "batch_size", "padding_ratio" })
        {
            Assert.True(Value(metrics, $"orleansgpu_inference_{histogram}_count{{{MiniLm}}}") >= 1, $"no {histogram} series for MiniLM:\n{metrics}");
            Assert.Contains($"orleansgpu_inference_{histogram}_bucket{{{MiniLm},le=", metrics);
        }

        Assert.True(Value(metrics, $"orleansgpu_inference_tokens_total{{{MiniLm}}}") >= 2 * 3); // each text: [CLS], a word or more, [SEP]
        Assert.True(Value(metrics, $"orleansgpu_inference_padded_tokens_total{{{MiniLm}}}") >= Value(metrics, $"orleansgpu_inference_tokens_total{{{MiniLm}}}"));
        Assert.True(Value(metrics, $"orleansgpu_inference_model_memory_bytes{{{MiniLm}}}") > 10_000_000);
        Assert.True(Value(metrics, $"orleansgpu_inference_model_load_seconds_count{{{MiniLm}}}") >= 1);
        Assert.True(Value(metrics, "http_requests_received_total{code=\"200\",method=\"POST\",endpoint=\"/embed\"}") >= 1);
    }

    [Fact]
    public async Task Three_hundred_made_up_methods_add_no_series()
    {
        var ct = TestContext.Current.CancellationToken;
        using var http = fixture.Client();
        async Task SendAsync(string method, string path)
        {
            using var request = new HttpRequestMessage(new HttpMethod(method), path);
            using var response = await http.SendAsync(request, ct);
            Assert.True(response.StatusCode is HttpStatusCode.MethodNotAllowed or HttpStatusCode.NotFound, $"{method} {path}: {response.StatusCode}");
        }

        await SendAsync("FIRST", "/embed");
        await SendAsync("FIRST", "/no/such/route");
        await http.GetStringAsync("/metrics", ct); // a scrape counts itself once it is answered: let it be in both counts
        var before = HttpSeries(await http.GetStringAsync("/metrics", ct));

        for (var i = 0; i < 300; i++)
        {
            await SendAsync($"MADEUP{i}", i % 2 == 0 ? "/embed" : $"/no/such/route/{i}");
        }

        var text = await http.GetStringAsync("/metrics", ct);
        var after = HttpSeries(text);
        Assert.Equal(before.Order(), after.Order());
        Assert.DoesNotContain("MADEUP", text);
        Assert.Contains("http_requests_received_total{code=\"405\",method=\"other\",endpoint=\"unmatched\"}", text);
    }

    /// <summary>The HTTP series of a scrape: each line's name and labels, without its value.</summary>
    private static HashSet<string> HttpSeries(string metrics) =>
        [.. metrics.Split('\n').Where(l => l.StartsWith("http_", StringComparison.Ordinal)).Select(l => l[..l.LastIndexOf(' ')])];

    private static double Value(string metrics, string series)
    {
        var line = metrics.Split('\n').FirstOrDefault(l => l.StartsWith(series + " ", StringComparison.Ordinal));
        Assert.True(line is not null, $"{series} is not in /metrics");
        return double.Parse(line[(series.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }
}
