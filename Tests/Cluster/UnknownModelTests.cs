using Microsoft.Extensions.DependencyInjection;
using Orleans.TestingHost;
using OrleansGpu.Api.Http;
using OrleansGpu.Grains;
using OrleansGpu.Grains.Hosting;
using OrleansGpu.Inference.Models;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Cluster;

/// <summary>
/// Issue 10 §2: distinct unknown model names must not accumulate state. One GPU silo in process, with a hub
/// STAND-IN on loopback that requests may download <c>acme/*</c> from.
/// </summary>
public sealed class UnknownModelTests : IAsyncLifetime
{
    private readonly TestModelsFolder _models = new();
    private readonly string _cache = Directory.CreateTempSubdirectory("unknown-models-cache-").FullName;
    private HubStandIn _hub = null!;
    private InProcessTestCluster _cluster = null!;

    public async ValueTask InitializeAsync()
    {
        _hub = await HubStandIn.StartAsync();
        _hub.Add("acme/gated", TestRepos.Tiny("model.onnx"), gated: true);
        var builder = new InProcessTestClusterBuilder(1);
        builder.ConfigureSilo((options, silo) => silo.AddGpuHost(o =>
        {
            o.HostName = options.SiloName;
            o.ModelsDirectory = _models.Directory;
            o.Device = "cpu";
            o.DefaultEmbedModel = "all-MiniLM-L6-v2";
            o.DefaultBertScoreModel = "all-MiniLM-L6-v2";
            o.WarmDefaults = false;
            o.Sources = new ModelSourceOptions { HubEndpoint = _hub.Endpoint, CacheDirectory = _cache, Allow = ["acme/*"] };
        }));
        _cluster = builder.Build();
        await _cluster.DeployAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await _cluster.DisposeAsync();
        await _hub.DisposeAsync();
        _models.Dispose();
        Directory.Delete(_cache, recursive: true);
    }

    [Fact]
    public async Task Many_distinct_unknown_names_leave_no_grain_no_loaded_model_and_a_bounded_memory()
    {
        var ct = TestContext.Current.CancellationToken;
        var silo = _cluster.Silos[0];
        var hostName = silo.ServiceProvider.GetRequiredService<GpuHostOptions>().HostName;
        var host = _cluster.Client.GetGrain<IGpuHostGrain>(hostName);
        await host.EmbedAsync(new EmbedWork("all-MiniLM-L6-v2", ["a model that exists"]), ct);
        var grainsBefore = await ModelGrainActivationsAsync();
        var loadedBefore = (await host.GetInfoAsync()).LoadedModels.Count;
        Assert.Equal(1, grainsBefore);
        Assert.Equal(1, loadedBefore);

        const int Names = 300;
        for (var i = 0; i < Names; i++)
        {
            // Allowed but unknown to the hub, not allowed, and bare: each a client error.
            Assert.Equal(ErrorCodes.ModelNotFound, (await FailAsync(host, $"acme/unknown-{i}")).Code);
            Assert.Equal(ErrorCodes.ModelNotAllowed, (await FailAsync(host, $"other/unknown-{i}")).Code);
            Assert.Equal(ErrorCodes.ModelNotAllowed, (await FailAsync(host, $"made-up-{i}")).Code);
        }

        // Known to the hub but refused at download: its grain was activated, then went.
        var gated = await FailAsync(host, "acme/gated");
        Assert.Equal(ErrorCodes.ModelGated, gated.Code);
        Assert.Equal(403, ApiErrorCatalog.Status(gated.Code));

        await WaitForAsync(async () => await ModelGrainActivationsAsync() == grainsBefore, ct);
        var info = await host.GetInfoAsync();
        Assert.Equal(loadedBefore, info.LoadedModels.Count);
        Assert.Equal(loadedBefore, silo.ServiceProvider.GetRequiredService<HostModels>().Loaded.Count);
        Assert.InRange(silo.ServiceProvider.GetRequiredService<ModelSources>().UnknownNames, Names, ModelSources.UnknownNameCapacity);

        // Asking for the same unknown names again costs the hub nothing: they are remembered (within the bound).
        var asked = _hub.Requests.Count;
        for (var i = 0; i < Names; i++)
        {
            await FailAsync(host, $"acme/unknown-{i}");
        }

        Assert.Equal(asked, _hub.Requests.Count);
    }

    private static async Task<InvalidWorkException> FailAsync(IGpuHostGrain host, string model) =>
        await Assert.ThrowsAsync<InvalidWorkException>(() => host.EmbedAsync(new EmbedWork(model, ["x"])));

    private async Task<int> ModelGrainActivationsAsync()
    {
        var statistics = await _cluster.Client.GetGrain<IManagementGrain>(0).GetSimpleGrainStatistics();
        return statistics.Where(s => s.GrainType.Contains(nameof(ModelGrain), StringComparison.Ordinal)).Sum(s => s.ActivationCount);
    }

    private static async Task WaitForAsync(Func<Task<bool>> condition, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "The condition did not hold within 20 s.");
            await Task.Delay(100, ct);
        }
    }
}
