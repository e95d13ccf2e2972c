using Microsoft.Extensions.Logging.Abstractions;
using OrleansGpu.Inference.Checkpoints;
using OrleansGpu.Inference.Files;
using OrleansGpu.Inference.Graphs;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Silo;

/// <summary><c>Silo.Gpu fetch</c> as real processes against a hub STAND-IN on loopback.</summary>
public sealed class FetchCommandTests : IAsyncLifetime
{
    private readonly string _root = Directory.CreateTempSubdirectory("fetch-").FullName;
    private HubStandIn _hub = null!;

    public async ValueTask InitializeAsync() => _hub = await HubStandIn.StartAsync();

    public async ValueTask DisposeAsync()
    {
        await _hub.DisposeAsync();
        Directory.Delete(_root, recursive: true);
    }

    [Fact]
    public async Task Stand_in_hub_two_fetch_processes_at_once_download_the_model_once_into_the_shared_cache()
    {
        _hub.Add("acme/minilm-st", TestRepos.MiniLmSentenceTransformers());
        _hub.CdnBytesPerSecond = 40_000_000; // seconds: the second process starts while the first downloads
        var cache = Path.Combine(_root, "hf-cache");

        await using var first = Fetch(cache, "acme/minilm-st");
        await using var second = Fetch(cache, "acme/minilm-st");
        var codes = await Task.WhenAll(first.WaitForExitAsync(TimeSpan.FromMinutes(2)), second.WaitForExitAsync(TimeSpan.FromMinutes(2)));

        Assert.True(codes.All(c => c == 0), $"exit codes {string.Join(", ", codes)}:\n{first.Output}\n{second.Output}");
        Assert.Contains("Fetched acme/minilm-st", first.Output);
        Assert.Contains("Fetched acme/minilm-st", second.Output);
        Assert.Contains(cache, first.Output); // where the cache is, to copy it
        Assert.Single(_hub.CdnGets(TestRepos.MiniLmOnnx));
        Assert.Single(_hub.Requests, r => r.Server == "hub" && r.Method == "GET" && r.Path.EndsWith("/vocab.txt"));
        var snapshot = Directory.GetDirectories(Path.Combine(cache, "models--acme--minilm-st", "snapshots")).Single();
        Assert.Equal(TestRepos.MiniLmOnnx, await File.ReadAllBytesAsync(Path.Combine(snapshot, "onnx", "model.onnx"), TestContext.Current.CancellationToken));
    }

    [Fact]
    public async Task Stand_in_hub_fetch_builds_the_graph_a_host_loads_and_two_processes_that_find_its_build_under_way_build_it_once()
    {
        _hub.Add("acme/tiny-deberta", TinyDeberta.Repo());
        var cache = Path.Combine(_root, "hf-cache");
        var graphs = Path.Combine(_root, "graphs");

        // --no-build only downloads.
        await using (var download = FetchInto(cache, graphs, "--no-build", "acme/tiny-deberta"))
        {
            Assert.True(await download.WaitForExitAsync(TimeSpan.FromMinutes(2)) == 0, download.Output);
        }

        Assert.False(Directory.Exists(graphs) && Directory.EnumerateFileSystemEntries(graphs).Any());

        // The graph a host loads for this model (its last layer: it is not in bert_score's table) is being built by
        // another process, as far as the two fetches can tell: this test holds that build's lock. Both wait for it.
        var snapshot = Directory.GetDirectories(Path.Combine(cache, "models--acme--tiny-deberta", "snapshots")).Single();
        string key;
        using (var checkpoint = ModelWeights.Open(snapshot))
        {
            key = NativeEncoderGraphs.CacheKey(
                snapshot, checkpoint, ModelArchitectureConfig.Read(Path.Combine(snapshot, "config.json")), 3, new NativeGraphOptions());
        }

        var held = FileLock.Acquire(NativeEncoderGraphs.LockPath(graphs, key), NullLogger.Instance, "the test");
        await using var first = FetchInto(cache, graphs, "acme/tiny-deberta");
        await using var second = FetchInto(cache, graphs, "acme/tiny-deberta");
        try
        {
            await WaitForAsync(() => first.Output.Contains("Waiting for another process's build") && second.Output.Contains("Waiting for another process's build"), first, second);
            Assert.Empty(Directory.GetDirectories(graphs));
        }
        finally
        {
            // The other build gave up without a graph: the two waiting now race for the lock.
            held.Dispose();
        }

        var codes = await Task.WhenAll(first.WaitForExitAsync(TimeSpan.FromMinutes(2)), second.WaitForExitAsync(TimeSpan.FromMinutes(2)));
        Assert.True(codes.All(c => c == 0), $"exit codes {string.Join(", ", codes)}:\n{first.Output}\n{second.Output}");
        var outputs = first.Output + second.Output;
        Assert.Equal(1, outputs.Split('\n').Count(l => l.Contains("Built the native graph of acme/tiny-deberta", StringComparison.Ordinal)));
        Assert.Equal(1, outputs.Split('\n').Count(l => l.Contains("Using the cached native graph of acme/tiny-deberta", StringComparison.Ordinal)));
        Assert.Equal([Path.Combine(graphs, key)], Directory.GetDirectories(graphs));
        Assert.Contains(graphs, first.Output); // where the graphs are, to copy them
    }

    [Fact]
    public async Task Stand_in_hub_a_fetch_that_fails_says_why_and_exits_non_zero()
    {
        await using var fetch = Fetch(Path.Combine(_root, "hf-cache"), "acme/no-such-model");
        Assert.Equal(1, await fetch.WaitForExitAsync(TimeSpan.FromMinutes(1)));
        Assert.Contains("Could not fetch acme/no-such-model", fetch.Output);
        Assert.Contains("Check the name", fetch.Output);
    }

    private ServiceProcess Fetch(string cache, params string[] models) => FetchInto(cache, Path.Combine(_root, "graphs"), models);

    private ServiceProcess FetchInto(string cache, string graphs, params string[] arguments) => ServiceProcess.Start(
        Path.Combine(_root, "models"),
        new Dictionary<string, string> { ["HF_ENDPOINT"] = _hub.Endpoint, ["HF_HUB_OFFLINE"] = "0", ["HF_HUB_CACHE"] = cache, ["GRAPHS_DIR"] = graphs },
        project: "Silo.Gpu",
        arguments: ["fetch", .. arguments]);

    private static async Task WaitForAsync(Func<bool> condition, params ServiceProcess[] processes)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline || processes.Any(p => p.HasExited))
            {
                throw new TimeoutException($"The processes never reached the expected point:\n{string.Join("\n", processes.Select(p => p.Output))}");
            }

            await Task.Delay(100, TestContext.Current.CancellationToken);
        }
    }
}
