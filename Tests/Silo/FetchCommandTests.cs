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
    public async Task Stand_in_hub_a_fetch_that_fails_says_why_and_exits_non_zero()
    {
        await using var fetch = Fetch(Path.Combine(_root, "hf-cache"), "acme/no-such-model");
        Assert.Equal(1, await fetch.WaitForExitAsync(TimeSpan.FromMinutes(1)));
        Assert.Contains("Could not fetch acme/no-such-model", fetch.Output);
        Assert.Contains("Check the name", fetch.Output);
    }

    private ServiceProcess Fetch(string cache, params string[] models) => ServiceProcess.Start(
        Path.Combine(_root, "models"),
        new Dictionary<string, string> { ["HF_ENDPOINT"] = _hub.Endpoint, ["HF_HUB_OFFLINE"] = "0", ["HF_HUB_CACHE"] = cache },
        project: "Silo.Gpu",
        arguments: ["fetch", .. models]);
}
