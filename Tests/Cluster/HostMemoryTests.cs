using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using OrleansGpu.Inference.Diagnostics;
using OrleansGpu.Inference.Models;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Cluster;

/// <summary>
/// A host's memory budget, on a real front process (its co-hosted silo on the CPU) with the real MiniLM under several
/// names and a budget of one and a half MiniLMs, so that only one fits: loads, unloads of the least recently used idle
/// model, a model in flight kept, requests racing unloads, a model larger than the budget refused; seen through
/// <c>/info</c> and <c>/metrics</c>.
/// </summary>
public sealed class HostMemoryTests(HostMemoryTests.Fixture fixture) : IClassFixture<HostMemoryTests.Fixture>
{
    [Fact]
    public async Task Loading_a_model_that_does_not_fit_unloads_the_least_recently_used_idle_one_and_info_and_metrics_show_it()
    {
        var ct = TestContext.Current.CancellationToken;
        using var http = fixture.Client();
        var (a, b) = ("acme/lru-a", "acme/lru-b");
        var first = await EmbedAsync(http, a, ["the first model"], ct);
        var host = await HostAsync(http, ct);
        var evictionsBefore = host["evictions"]!.GetValue<long>();
        Assert.Equal(fixture.Budget, host["memory_budget_bytes"]!.GetValue<long>());
        var loadedA = Model(host, a);
        Assert.NotNull(loadedA);
        Assert.Equal(fixture.WeightBytes, loadedA["weight_bytes"]!.GetValue<long>());
        // What the load measurably took (on the CPU, about twice the weights: the graph read, and its tensors) or at least the weights.
        var heldA = loadedA["memory_bytes"]!.GetValue<long>();
        Assert.True(heldA >= fixture.WeightBytes, $"{heldA} < {fixture.WeightBytes}");
        var lastUsed = DateTimeOffset.Parse(loadedA["last_used"]!.GetValue<string>(), CultureInfo.InvariantCulture);
        Assert.Equal(TimeSpan.Zero, lastUsed.Offset);
        Assert.InRange(lastUsed, DateTimeOffset.UtcNow.AddMinutes(-2), DateTimeOffset.UtcNow.AddSeconds(1));
        Assert.Equal(heldA, host["memory_used_bytes"]!.GetValue<long>());

        // B does not fit beside A: A, idle, goes.
        await EmbedAsync(http, b, ["the second model"], ct);
        host = await HostAsync(http, ct);
        Assert.Null(Model(host, a));
        Assert.NotNull(Model(host, b));
        Assert.DoesNotContain(a, host["loaded_models"]!.AsArray().Select(n => n!.GetValue<string>()));
        Assert.Equal(evictionsBefore + 1, host["evictions"]!.GetValue<long>());

        // A again: loaded a second time, B goes; its vectors are the same as before.
        var again = await EmbedAsync(http, a, ["the first model"], ct);
        Assert.Equal(first, again);
        host = await HostAsync(http, ct);
        Assert.Equal(2, Model(host, a)!["loads"]!.GetValue<long>());
        Assert.Null(Model(host, b));
        Assert.Equal(evictionsBefore + 2, host["evictions"]!.GetValue<long>());

        var metrics = await http.GetStringAsync("/metrics", ct);
        Assert.Equal(fixture.Budget, Value(metrics, "orleansgpu_host_memory_budget_bytes", ("host", Fixture.HostName)));
        Assert.Equal(2, Value(metrics, "orleansgpu_host_model_loads_total", ("host", Fixture.HostName), ("model", a)));
        Assert.Equal(1, Value(metrics, "orleansgpu_host_model_loads_total", ("host", Fixture.HostName), ("model", b)));
        Assert.True(Value(metrics, "orleansgpu_host_model_evictions_total", ("host", Fixture.HostName)) >= evictionsBefore + 2);
        Assert.True(Value(metrics, "orleansgpu_host_model_memory_bytes", ("host", Fixture.HostName), ("model", a)) >= fixture.WeightBytes);
        Assert.Equal(Model(host, a)!["memory_bytes"]!.GetValue<long>(), Value(metrics, "orleansgpu_host_memory_used_bytes", ("host", Fixture.HostName)));
    }

    [Fact]
    public async Task A_model_with_work_in_flight_is_not_unloaded_and_the_load_that_needs_its_memory_waits_for_it()
    {
        var ct = TestContext.Current.CancellationToken;
        using var http = fixture.Client();
        var (busy, waiting) = ("acme/inflight-a", "acme/inflight-b");
        await EmbedAsync(http, busy, ["loaded first"], ct);

        var texts = LongTexts(300);
        var clock = Stopwatch.StartNew();
        var longJob = Timed(() => EmbedAsync(http, busy, texts, ct), clock);
        await WaitUntilAsync(async () => await RunningAsync(http, busy, ct), ct);

        var other = Timed(() => EmbedAsync(http, waiting, ["needs the memory the long job's model holds"], ct), clock);
        await Task.Delay(TimeSpan.FromSeconds(1), ct);
        if (!longJob.IsCompleted)
        {
            // While the long job runs, its model stays and the other waits.
            var host = await HostAsync(http, ct);
            Assert.NotNull(Model(host, busy));
            Assert.True(Model(host, busy)!["in_flight"]!.GetValue<int>() >= 1);
            Assert.Null(Model(host, waiting));
            Assert.False(other.IsCompleted);
        }

        var (longVectors, longDone) = await longJob;
        var (_, otherDone) = await other;
        Assert.Equal(texts.Length, longVectors.Length);
        Assert.True(otherDone >= longDone, $"the waiting load finished at {otherDone}, before the long job it waited for ({longDone})");
        var after = await HostAsync(http, ct);
        Assert.Null(Model(after, busy));
        Assert.NotNull(Model(after, waiting));
    }

    [Fact]
    public async Task Requests_racing_unloads_of_their_model_all_succeed_with_the_models_vectors()
    {
        var ct = TestContext.Current.CancellationToken;
        using var http = fixture.Client();
        string[] models = ["acme/race-a", "acme/race-b"];
        var expected = new Dictionary<string, float[][]>();
        foreach (var model in models)
        {
            expected[model] = await EmbedAsync(http, model, ["a text that races", $"and another for {model}"], ct);
        }

        var evictionsBefore = (await HostAsync(http, ct))["evictions"]!.GetValue<long>();

        // Four clients, each alternating the two models: every switch needs the other model unloaded, while requests
        // for it keep arriving, are queued, or run.
        var results = await Task.WhenAll(Enumerable.Range(0, 4).Select(async client =>
        {
            var served = 0;
            for (var i = 0; i < 6; i++)
            {
                var model = models[(client + i) % 2];
                Assert.Equal(expected[model], await EmbedAsync(http, model, ["a text that races", $"and another for {model}"], ct));
                served++;
            }

            return served;
        }));

        Assert.Equal(24, results.Sum());
        var host = await HostAsync(http, ct);
        Assert.True(host["evictions"]!.GetValue<long>() > evictionsBefore);
        Assert.Single(host["models"]!.AsArray(), m => models.Contains(m!["name"]!.GetValue<string>()));
    }

    [Fact]
    public async Task A_model_larger_than_the_whole_budget_is_a_422_naming_its_size_and_the_budget()
    {
        var ct = TestContext.Current.CancellationToken;
        using var http = fixture.Client();
        var loadedBefore = (await HostAsync(http, ct))["models"]!.AsArray().Select(m => m!["name"]!.GetValue<string>()).ToList();

        using var response = await http.PostAsJsonAsync("/embed", new { texts = new[] { "too large" }, model = Fixture.TooLarge }, ct);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, response.StatusCode);
        var problem = JsonNode.Parse(await response.Content.ReadAsStringAsync(ct))!;
        Assert.Equal("model_too_large", problem["code"]!.GetValue<string>());
        var detail = problem["detail"]!.GetValue<string>();
        Assert.Contains(Fixture.TooLarge, detail);
        Assert.Contains($"{fixture.TooLargeBytes} bytes", detail);
        Assert.Contains($"{fixture.Budget} bytes", detail);
        Assert.Contains("GPU_MEMORY_BUDGET", detail);

        // Nothing was unloaded for it.
        var loadedAfter = (await HostAsync(http, ct))["models"]!.AsArray().Select(m => m!["name"]!.GetValue<string>()).ToList();
        Assert.Equal(loadedBefore, loadedAfter);
    }

    internal static async Task<float[][]> EmbedAsync(HttpClient http, string model, string[] texts, CancellationToken ct)
    {
        using var response = await http.PostAsJsonAsync("/embed", new { texts, model }, ct);
        var body = await response.Content.ReadAsStringAsync(ct);
        Assert.True(response.IsSuccessStatusCode, $"{model}: {(int)response.StatusCode} {body}");
        return [.. JsonNode.Parse(body)!["embeddings"]!.AsArray().Select(v => v!.AsArray().Select(x => x!.GetValue<float>()).ToArray())];
    }

    internal static async Task<JsonNode> HostAsync(HttpClient http, CancellationToken ct) =>
        JsonNode.Parse(await http.GetStringAsync("/info", ct))!["hosts"]!.AsArray().Single(h => h!["name"]!.GetValue<string>() == Fixture.HostName)!;

    internal static JsonNode? Model(JsonNode host, string name) =>
        host["models"]!.AsArray().FirstOrDefault(m => m!["name"]!.GetValue<string>() == name);

    internal static string[] LongTexts(int count) =>
        [.. Enumerable.Range(0, count).Select(i => string.Join(' ', Enumerable.Repeat($"a long text that keeps the model busy for a while {i}", 8)))];

    internal static async Task<bool> RunningAsync(HttpClient http, string model, CancellationToken ct) =>
        JsonNode.Parse(await http.GetStringAsync("/status", ct))!["active_jobs"]!.AsArray()
            .Any(j => j!["model"]!.GetValue<string>() == model && j["state"]!.GetValue<string>() == "running");

    internal static async Task WaitUntilAsync(Func<Task<bool>> condition, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not reached in 120 s");
            await Task.Delay(50, ct);
        }
    }

    private static async Task<(T Result, TimeSpan At)> Timed<T>(Func<Task<T>> work, Stopwatch clock)
    {
        var result = await work();
        return (result, clock.Elapsed);
    }

    /// <summary>The value of the series <paramref name="name"/> with (at least) <paramref name="labels"/>, or null.</summary>
    internal static double? Find(string metrics, string name, params (string Key, string Value)[] labels) =>
        metrics.Split('\n')
            .Where(l => l.StartsWith(name + "{", StringComparison.Ordinal) && labels.All(p => l.Contains($"{p.Key}=\"{p.Value}\"", StringComparison.Ordinal)))
            .Select(l => (double?)double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture))
            .FirstOrDefault();

    internal static double Value(string metrics, string name, params (string Key, string Value)[] labels) =>
        Find(metrics, name, labels) ?? throw new Xunit.Sdk.XunitException($"{name} with {string.Join(", ", labels)} is not in /metrics:\n{metrics}");

    /// <summary>
    /// The front with its silo, a models folder of MiniLM under the names the tests use (folders linked to one copy),
    /// a model whose weights are larger than the budget, and a budget of one and a half MiniLMs.
    /// </summary>
    public class Fixture : IAsyncLifetime
    {
        public const string HostName = "memory-host";

        public const string TooLarge = "acme/too-large";

        private readonly TestModelsFolder _models = new();

        public ServiceProcess Front { get; private set; } = null!;

        /// <summary>MiniLM's weights, as the host estimates them from its files.</summary>
        public long WeightBytes { get; private set; }

        public long Budget => WeightBytes * 3 / 2;

        public long TooLargeBytes { get; private set; }

        /// <summary>How long a load waits for memory held by models in use.</summary>
        protected virtual TimeSpan MemoryWait => TimeSpan.FromMinutes(2);

        public async ValueTask InitializeAsync()
        {
            var copy = Path.Combine(_models.Directory, TestModelsFolder.CopyName);
            WeightBytes = InferenceMetrics.WeightBytes(WeightFiles.Find(copy)!.OnnxPath!);
            foreach (var name in new[] { "lru-a", "lru-b", "inflight-a", "inflight-b", "race-a", "race-b", "busy-a", "busy-b" })
            {
                Directory.CreateSymbolicLink(Path.Combine(_models.Directory, "acme", name), copy);
            }

            // MiniLM with external weights beside its graph that take it past the budget (a sparse file: no disk used).
            var onnx = await TestModelsFolder.AddLinkedCopyAsync(_models.Directory, TooLarge, Budget);
            TooLargeBytes = InferenceMetrics.WeightBytes(onnx);
            Front = ServiceProcess.Start(_models.Directory, new Dictionary<string, string>
            {
                ["GPU_HOST_NAME"] = HostName,
                ["GPU_MEMORY_BUDGET"] = Budget.ToString(CultureInfo.InvariantCulture),
                ["Gpu__MemoryWait"] = MemoryWait.ToString(),
                ["GPU_WARM_DEFAULTS"] = "false",
                ["GPU_MAX_CONCURRENT"] = "2",
            });
            await Front.WaitUntilHealthyAsync();
        }

        public HttpClient Client() => new() { BaseAddress = Front.BaseAddress, Timeout = TimeSpan.FromMinutes(5) };

        public async ValueTask DisposeAsync()
        {
            await Front.DisposeAsync();
            _models.Dispose();
            GC.SuppressFinalize(this);
        }
    }
}

/// <summary>
/// The same host with a short wait for memory: a load that only models in use stand in the way of is answered busy
/// (503 with Retry-After), and the work in flight finishes untouched.
/// </summary>
public sealed class HostMemoryBusyTests(HostMemoryBusyTests.ShortWait fixture) : IClassFixture<HostMemoryBusyTests.ShortWait>
{
    [Fact]
    public async Task A_load_blocked_by_models_in_use_past_the_wait_is_a_503_busy_with_retry_after_and_the_work_in_flight_finishes()
    {
        var ct = TestContext.Current.CancellationToken;
        using var http = fixture.Client();
        var (busy, blocked) = ("acme/busy-a", "acme/busy-b");
        await HostMemoryTests.EmbedAsync(http, busy, ["loaded first"], ct);

        var texts = HostMemoryTests.LongTexts(400);
        var longJob = HostMemoryTests.EmbedAsync(http, busy, texts, ct);
        await HostMemoryTests.WaitUntilAsync(async () => await HostMemoryTests.RunningAsync(http, busy, ct), ct);

        using var response = await http.PostAsJsonAsync("/embed", new { texts = new[] { "no room" }, model = blocked }, ct);
        var body = await response.Content.ReadAsStringAsync(ct);
        if (response.StatusCode == HttpStatusCode.OK)
        {
            // Only possible when the long job ended within the wait (a fast machine): then the load went on as it should.
            Assert.True(longJob.IsCompleted, "the load succeeded while the model in its way was still in use");
            return;
        }

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("busy", JsonNode.Parse(body)!["code"]!.GetValue<string>());
        Assert.Contains("no memory free", body);
        Assert.Equal(TimeSpan.FromSeconds(5), response.Headers.RetryAfter?.Delta);

        Assert.Equal(texts.Length, (await longJob).Length);
        var host = await HostMemoryTests.HostAsync(http, ct);
        Assert.NotNull(HostMemoryTests.Model(host, busy));
        Assert.Null(HostMemoryTests.Model(host, blocked));
    }

    public sealed class ShortWait : HostMemoryTests.Fixture
    {
        protected override TimeSpan MemoryWait => TimeSpan.FromSeconds(1);
    }
}
