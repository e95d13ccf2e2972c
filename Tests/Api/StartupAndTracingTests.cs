using System.Net;
using System.Net.Http.Json;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Api;

/// <summary>A newcomer's first start (default log levels) and traces across the front and the grains, in real front processes.</summary>
public sealed class StartupAndTracingTests
{
    [Fact]
    public async Task The_first_start_prints_a_short_banner_and_keeps_the_progress_lines()
    {
        var ct = TestContext.Current.CancellationToken;
        using var models = new TestModelsFolder();
        await using var front = ServiceProcess.Start(models.Directory, new Dictionary<string, string>
        {
            // The default log levels, as `dotnet run --project Api.Front` has them.
            ["Logging__LogLevel__Default"] = string.Empty,
            ["Logging__LogLevel__OrleansGpu"] = string.Empty,
        });
        await front.WaitUntilHealthyAsync();
        await WaitForAsync(() => front.Output.Contains("ready on", StringComparison.Ordinal), front);

        var start = front.Output;
        var lines = start.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length < 40, $"the start printed {lines.Length} lines:\n{start}");
        Assert.Contains($"listening on {front.BaseAddress.ToString().TrimEnd('/')}", start);
        Assert.Contains("key: none, so loopback only", start);
        Assert.Contains("GPU host", start);
        Assert.Contains("ready on cpu", start);
        Assert.Contains("sentence-transformers/all-MiniLM-L6-v2", start);
        Assert.DoesNotContain("Polly", start);
        Assert.DoesNotContain("SiloOptionsLogger", start);

        // The seed's batch progress lines are still there at the default levels.
        using var http = new HttpClient { BaseAddress = front.BaseAddress };
        using var response = await http.PostAsJsonAsync("/embed", new { texts = Enumerable.Range(0, 70).Select(i => $"text {i}").ToArray() }, ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await WaitForAsync(() => front.Output.Contains("batch 3/3 (100%)", StringComparison.Ordinal), front);
        Assert.Contains("[embed] job=", front.Output);
    }

    [Fact]
    public async Task One_trace_spans_the_http_request_the_host_grain_and_the_model_grain()
    {
        var ct = TestContext.Current.CancellationToken;
        using var models = new TestModelsFolder();
        await using var front = ServiceProcess.Start(models.Directory, new Dictionary<string, string> { ["OTEL_TRACES_EXPORTER"] = "console" });
        await front.WaitUntilHealthyAsync();

        var traceId = Convert.ToHexStringLower(Guid.NewGuid().ToByteArray());
        using var http = new HttpClient { BaseAddress = front.BaseAddress };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/embed") { Content = JsonContent.Create(new { texts = new[] { "traced text" } }) };
        request.Headers.Add("traceparent", $"00-{traceId}-{Convert.ToHexStringLower(BitConverter.GetBytes(42L))}-01");
        using var response = await http.SendAsync(request, ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        string[] expected = ["POST /embed", "IGpuHostGrain/EmbedAsync", "IModelGrain/EmbedAsync"];
        await WaitForAsync(() => expected.All(Spans(front.Output, traceId).Contains), front);
        var spans = Spans(front.Output, traceId);
        Assert.All(expected, name => Assert.Contains(name, spans));
    }

    /// <summary>The names of the spans the console exporter printed for <paramref name="traceId"/>.</summary>
    private static HashSet<string> Spans(string output, string traceId)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        string? current = null;
        foreach (var line in output.Split('\n'))
        {
            if (line.StartsWith("Activity.TraceId:", StringComparison.Ordinal))
            {
                current = line["Activity.TraceId:".Length..].Trim();
            }
            else if (line.StartsWith("Activity.DisplayName:", StringComparison.Ordinal) && current == traceId)
            {
                names.Add(line["Activity.DisplayName:".Length..].Trim());
            }
        }

        return names;
    }

    private static async Task WaitForAsync(Func<bool> condition, ServiceProcess front)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"not seen within 60 s:\n{front.Output[^Math.Min(front.Output.Length, 8000)..]}");
            await Task.Delay(100);
        }
    }
}
