using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using OrleansGpu.Grains;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Api;

/// <summary>
/// Faults inside one host, over HTTP, with two hosts as real processes, each with its own models folder: the front
/// (host fault-good, co-hosting its silo) and a Silo.Gpu (fault-bad) joining it. fault-bad's copy of
/// acme/minilm-copy is damaged, and its forward passes of the default model fail as a broken GPU's would; fault-good's
/// device runs out of memory for passes above 300 padded tokens (more than the oracle's longest text, 256). Neither a GPU's out-of-memory nor its failures can
/// happen on a CPU, so they are injected at the session seam through the test-only settings
/// (<see cref="PassFaultInjection"/>); everything else is real. Routing is round-robin, so that without the fault
/// handling half of the requests would go to fault-bad.
/// </summary>
public sealed class HostFaultTests(HostFaultTests.FaultyHosts hosts) : IClassFixture<HostFaultTests.FaultyHosts>
{
    private const string Default = "sentence-transformers/all-MiniLM-L6-v2";

    [Fact]
    public async Task Passes_failing_on_one_host_degrade_it_for_the_model_and_every_request_is_answered_by_the_other_which_splits_passes_out_of_memory_injected_at_session_seam_cpu_stand_in()
    {
        var ct = TestContext.Current.CancellationToken;
        using var http = hosts.Client();
        var oracle = Oracles.Embed;
        var texts = oracle.Texts;

        JsonElement degraded = default;
        for (var attempt = 0; attempt < 12; attempt++)
        {
            using var response = await http.PostAsJsonAsync("/embed", new { texts }, ct);
            var body = await ReadAsync(response);
            Assert.Equal("fault-good", Assert.Single(response.Headers.GetValues("X-Gpu-Host")));
            var worst = 0.0;
            var i = 0;
            foreach (var row in body.GetProperty("embeddings").EnumerateArray())
            {
                var want = oracle.Embeddings[i++ % oracle.Texts.Length];
                var d = 0;
                foreach (var v in row.EnumerateArray())
                {
                    worst = Math.Max(worst, Math.Abs(v.GetSingle() - want[d++]));
                }
            }

            Assert.Equal(texts.Length, i);
            Assert.True(worst <= 1e-5, $"max |Δ| = {worst:E2}");

            using var health = JsonDocument.Parse(await http.GetStringAsync("/health", ct));
            degraded = health.RootElement.Clone();
            if (degraded.GetProperty("degraded").EnumerateArray().Any(f => f.GetProperty("host").GetString() == "fault-bad" && f.GetProperty("model").GetString() == Default))
            {
                break;
            }

            await Task.Delay(hosts.RefreshInterval, ct);
        }

        // /health: still ok (another host serves the model), with the degraded host, the model and why.
        Assert.Equal("ok", degraded.GetProperty("status").GetString());
        var fault = degraded.GetProperty("degraded").EnumerateArray().Single(f => f.GetProperty("model").GetString() == Default);
        Assert.Equal("fault-bad", fault.GetProperty("host").GetString());
        Assert.Equal("degraded", fault.GetProperty("state").GetString());
        Assert.Contains("illegal memory access", fault.GetProperty("reason").GetString());
        Assert.True(fault.GetProperty("failures").GetInt32() >= 2);

        // /status: the host is degraded, with the model; the other serves.
        using var status = JsonDocument.Parse(await http.GetStringAsync("/status", ct));
        var states = status.RootElement.GetProperty("hosts").EnumerateArray().ToDictionary(h => h.GetProperty("name").GetString()!, h => h.Clone());
        Assert.Equal("degraded", states["fault-bad"].GetProperty("state").GetString());
        Assert.Contains(states["fault-bad"].GetProperty("faults").EnumerateArray(), f => f.GetProperty("model").GetString() == Default);
        Assert.Equal("serving", states["fault-good"].GetProperty("state").GetString());

        // Degraded, it gets none of the model's requests: the host logs no more failed passes.
        var failedBefore = Count(hosts.Silo.Output, "forward passes failed in a row") + Count(hosts.Front.Output, "cannot run");
        for (var k = 0; k < 4; k++)
        {
            using var response = await http.PostAsJsonAsync("/embed", new { texts = texts[..4] }, ct);
            await ReadAsync(response);
            Assert.Equal("fault-good", Assert.Single(response.Headers.GetValues("X-Gpu-Host")));
        }

        Assert.Equal(failedBefore, Count(hosts.Silo.Output, "forward passes failed in a row") + Count(hosts.Front.Output, "cannot run"));

        // fault-good ran out of memory for its large passes and split them: counted and logged, no request failed.
        var metrics = await http.GetStringAsync("/metrics", ct);
        Assert.True(Value(metrics, $"orleansgpu_inference_oom_splits_total{{model=\"{Default}\",task=\"embed\"}}") >= 1, metrics);
        Assert.Contains("Out of device memory for a pass of", hosts.Front.Output);
    }

    [Fact]
    public async Task A_model_whose_copy_is_damaged_on_one_host_is_served_by_the_other_and_after_the_file_is_fixed_by_both()
    {
        var ct = TestContext.Current.CancellationToken;
        using var http = hosts.Client();
        var texts = new[] { "The weather is lovely today.", "It's so sunny outside!" };

        // Round-robin would send every other request to fault-bad: each is answered by fault-good instead.
        var seenFailed = false;
        for (var k = 0; k < 6; k++)
        {
            using var response = await http.PostAsJsonAsync("/embed", new { texts, model = TestModelsFolder.CopyName }, ct);
            await ReadAsync(response);
            Assert.Equal("fault-good", Assert.Single(response.Headers.GetValues("X-Gpu-Host")));

            // /status shows the failure on fault-bad, with the reason.
            using var status = JsonDocument.Parse(await http.GetStringAsync("/status", ct));
            var bad = status.RootElement.GetProperty("hosts").EnumerateArray().Single(h => h.GetProperty("name").GetString() == "fault-bad");
            if (bad.GetProperty("faults").EnumerateArray().FirstOrDefault(f => f.GetProperty("model").GetString() == TestModelsFolder.CopyName) is { ValueKind: JsonValueKind.Object } fault)
            {
                Assert.Equal("failed", fault.GetProperty("state").GetString());
                Assert.Contains("cannot be opened", fault.GetProperty("reason").GetString());
                Assert.DoesNotContain(hosts.BadModels, fault.GetProperty("reason").GetString());
                seenFailed = true;
            }

            await Task.Delay(hosts.RefreshInterval, ct);
        }

        Assert.True(seenFailed, $"/status never showed the failed model on fault-bad:\n{hosts.Silo.Output}");
        Assert.Contains($"{TestModelsFolder.CopyName} failed to load on this host", hosts.Silo.Output);

        // The operator replaces the file; after the back-off the host loads it again, from disk, and serves it.
        hosts.RepairCopy();
        var deadline = DateTime.UtcNow + hosts.LoadRetryBackoff + TimeSpan.FromSeconds(60);
        var servedByBad = false;
        while (!servedByBad && DateTime.UtcNow < deadline)
        {
            using var response = await http.PostAsJsonAsync("/embed", new { texts, model = TestModelsFolder.CopyName }, ct);
            await ReadAsync(response);
            servedByBad = response.Headers.GetValues("X-Gpu-Host").Single() == "fault-bad";
            await Task.Delay(hosts.RefreshInterval, ct);
        }

        Assert.True(servedByBad, $"fault-bad never served the repaired model:\n{hosts.Silo.Output}");
        using var after = JsonDocument.Parse(await http.GetStringAsync("/status", ct));
        Assert.DoesNotContain(
            after.RootElement.GetProperty("hosts").EnumerateArray().SelectMany(h => h.GetProperty("faults").EnumerateArray()),
            f => f.GetProperty("model").GetString() == TestModelsFolder.CopyName);
    }

    private static int Count(string text, string part) => (text.Length - text.Replace(part, string.Empty, StringComparison.Ordinal).Length) / part.Length;

    private static double Value(string metrics, string series)
    {
        var line = metrics.Split('\n').FirstOrDefault(l => l.StartsWith(series + " ", StringComparison.Ordinal));
        Assert.True(line is not null, $"{series} is not in /metrics");
        return double.Parse(line[(series.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }

    private static async Task<JsonElement> ReadAsync(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode}: {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    /// <summary>The front (fault-good, holding localhost membership) and a Silo.Gpu (fault-bad) with a damaged copy and failing passes.</summary>
    public sealed class FaultyHosts : IAsyncLifetime
    {
        private const string Key = "fault-key-0123456789";
        private readonly TestModelsFolder _goodModels = new();
        private readonly TestModelsFolder _badModels = new();
        private byte[] _original = [];

        public TimeSpan RefreshInterval { get; } = TimeSpan.FromMilliseconds(200);

        public TimeSpan LoadRetryBackoff { get; } = TimeSpan.FromSeconds(8);

        public ServiceProcess Front { get; private set; } = null!;

        public ServiceProcess Silo { get; private set; } = null!;

        public string BadModels => _badModels.Directory;

        private string DamagedFile => Path.Combine(_badModels.Directory, TestModelsFolder.CopyName, "model.onnx");

        public HttpClient Client()
        {
            var http = new HttpClient { BaseAddress = Front.BaseAddress, Timeout = TimeSpan.FromMinutes(3) };
            http.DefaultRequestHeaders.Add("X-API-Key", Key);
            return http;
        }

        /// <summary>Puts the model's whole file back, as an operator would (a new file: new size and time).</summary>
        public void RepairCopy() => File.WriteAllBytes(DamagedFile, _original);

        public async ValueTask InitializeAsync()
        {
            // fault-bad's copy is cut short, as a download or a copy that stopped half-way.
            _original = await File.ReadAllBytesAsync(DamagedFile);
            await File.WriteAllBytesAsync(DamagedFile, _original[..(_original.Length / 2)]);

            var primary = ServiceProcess.FreePort();
            Front = ServiceProcess.Start(_goodModels.Directory, new Dictionary<string, string>
            {
                ["API_KEY"] = Key,
                ["GPU_HOST_NAME"] = "fault-good",
                ["GPU_SPLIT_MIN_TEXTS"] = "0",
                ["ROUTING"] = "round-robin",
                ["Routing__RefreshInterval"] = RefreshInterval.ToString(),
                ["Routing__FailureCooldown"] = "00:00:00.050",
                ["Cluster__SiloPort"] = primary.ToString(),
                ["Cluster__PrimarySiloPort"] = primary.ToString(),
                [PassFaultInjection.OutOfMemoryVariable] = "300",
            });
            Silo = ServiceProcess.Start(_badModels.Directory, new Dictionary<string, string>
            {
                ["GPU_HOST_NAME"] = "fault-bad",
                ["Gpu__DegradeAfterFailures"] = "2",
                ["Gpu__DegradedCooldown"] = "00:05:00",
                ["Gpu__LoadRetryBackoff"] = LoadRetryBackoff.ToString(),
                ["Cluster__SiloPort"] = ServiceProcess.FreePort().ToString(),
                ["Cluster__PrimarySiloPort"] = primary.ToString(),
                ["Cluster__GatewayPort"] = ServiceProcess.FreePort().ToString(),
                [PassFaultInjection.FailPassesVariable] = Default,
            }, project: "Silo.Gpu");
            await Front.WaitUntilHealthyAsync(TimeSpan.FromSeconds(120));

            using var http = Client();
            var deadline = DateTime.UtcNow.AddSeconds(120);
            while (JsonDocument.Parse(await http.GetStringAsync("/health")).RootElement.GetProperty("hosts").GetInt32() < 2)
            {
                Assert.True(DateTime.UtcNow < deadline, $"fault-bad did not join:\n{Silo.Output}");
                await Task.Delay(250);
            }
        }

        public async ValueTask DisposeAsync()
        {
            await Silo.DisposeAsync();
            await Front.DisposeAsync();
            _goodModels.Dispose();
            _badModels.Dispose();
        }
    }
}
