using Microsoft.Extensions.DependencyInjection;
using Orleans.TestingHost;
using OrleansGpu.Grains;
using OrleansGpu.Grains.Hosting;
using OrleansGpu.Inference.Models;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Cluster;

/// <summary>
/// The order in which a host unloads models, and its serialised load decisions, on a real silo (in process) with a
/// 300 MiB budget and loads of declared sizes (no weights behind them, so each holds exactly its size): the unloads
/// go through the real model grains, which deactivate and report their memory freed. Not run beside other tests: what
/// a load holds is measured on the process's working set, which another test's model loads would move.
/// </summary>
[Collection(HostMemoryLruCollection.Name)]
public sealed class HostMemoryLruTests : IAsyncLifetime
{
    private const long MiB = 1L << 20;

    private readonly TestModelsFolder _models = new();
    private InProcessTestCluster _cluster = null!;

    private HostMemory Memory => _cluster.Silos[0].ServiceProvider.GetRequiredService<HostMemory>();

    public async ValueTask InitializeAsync()
    {
        var builder = new InProcessTestClusterBuilder(1);
        builder.ConfigureSilo((options, silo) => silo.AddGpuHost(o =>
        {
            o.HostName = options.SiloName;
            o.ModelsDirectory = _models.Directory;
            o.Device = "cpu";
            o.WarmDefaults = false;
            o.MemoryBudget = "300MiB";
            o.MemoryWait = TimeSpan.FromSeconds(2);
            o.Sources = new ModelSourceOptions { Offline = true, CacheDirectory = ServiceProcess.EmptyHuggingFaceCache };
        }));
        _cluster = builder.Build();
        await _cluster.DeployAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await _cluster.DisposeAsync();
        _models.Dispose();
    }

    [Fact]
    public async Task Idle_models_go_least_recently_used_first_and_one_in_flight_stays_even_when_it_is_the_oldest_sized_stand_ins()
    {
        var ct = TestContext.Current.CancellationToken;
        Assert.Equal(300 * MiB, Memory.Budget);
        await LoadAsync("m/a", 100, ct);
        await LoadAsync("m/b", 100, ct);
        await LoadAsync("m/c", 100, ct);
        Assert.Equal(["m/a", "m/b", "m/c"], Resident());

        // a used again: b is now the least recently used, and goes for d.
        Memory.Use("m/a").Dispose();
        await LoadAsync("m/d", 100, ct);
        Assert.Equal(["m/a", "m/c", "m/d"], Resident());
        Assert.Equal(1, Memory.Evictions);

        // c, the oldest now, has work in flight: a and then d go instead, for a model of 200 MiB.
        using (Memory.Use("m/c"))
        using (Memory.Use("m/e"))
        {
            await LoadAsync("m/e", 200, ct);
            Assert.Equal(["m/c", "m/e"], Resident());

            // e is in flight too (its work came in before its load, as a request's does).
            Assert.Equal(3, Memory.Evictions);
            Assert.Equal(300 * MiB, Memory.Used);

            // Nothing idle is left to unload: past the wait the host is busy, and nothing was unloaded for it.
            var busy = await Assert.ThrowsAsync<HostBusyException>(() => LoadAsync("m/f", 150, ct));
            Assert.Contains("no memory free for m/f", busy.Message);
            Assert.Equal(["m/c", "m/e"], Resident());
        }

        var describe = Memory.Describe();
        Assert.Equal(300 * MiB, describe.BudgetBytes);
        Assert.Equal(300 * MiB, describe.UsedBytes);
        Assert.All(describe.Models, m => Assert.Equal(0, m.InFlight));
    }

    [Fact]
    public async Task Two_loads_at_once_take_turns_so_both_never_count_the_same_free_memory_sized_stand_ins()
    {
        var ct = TestContext.Current.CancellationToken;
        var first = await Memory.BeginLoadAsync("m/first", 250 * MiB, ct);
        var second = Memory.BeginLoadAsync("m/second", 250 * MiB, ct);
        await Task.Delay(300, ct);
        Assert.False(second.IsCompleted, "a second load decided while the first was still loading");

        await first.CompleteAsync();
        using (var turn = await second)
        {
            // The first, idle, went to make room.
            Assert.DoesNotContain("m/first", Resident());
            await turn.CompleteAsync();
        }

        Assert.Equal(["m/second"], Resident());
        Assert.Equal(1, Memory.Loads["m/first"]);
        Assert.Equal(1, Memory.Loads["m/second"]);
    }

    [Fact]
    public async Task A_model_larger_than_the_budget_is_refused_before_anything_is_unloaded_sized_stand_ins()
    {
        var ct = TestContext.Current.CancellationToken;
        await LoadAsync("m/kept", 100, ct);
        var error = await Assert.ThrowsAsync<InvalidWorkException>(() => LoadAsync("m/huge", 301, ct));
        Assert.Equal(ErrorCodes.ModelTooLarge, error.Code);
        Assert.Contains($"{301 * MiB} bytes", error.Message);
        Assert.Contains($"{300 * MiB} bytes", error.Message);
        Assert.Equal(["m/kept"], Resident());
    }

    [Fact]
    public async Task An_unloaded_real_model_is_forgotten_by_routing_and_info_and_loads_again_with_the_same_vectors()
    {
        var ct = TestContext.Current.CancellationToken;
        var silo = _cluster.Silos[0];
        var hostName = silo.ServiceProvider.GetRequiredService<GpuHostOptions>().HostName;
        var host = _cluster.Client.GetGrain<IGpuHostGrain>(hostName);
        const string model = "all-MiniLM-L6-v2";
        var before = await host.EmbedAsync(new EmbedWork(model, ["loaded, then unloaded"]), ct);
        var canonical = Assert.Single(Resident());
        Assert.NotNull((await host.GetLoadAsync()).Model(model));

        // Another load that needs all but 50 MiB of the budget: MiniLM (at least its 87 MiB of weights) must go.
        await LoadAsync("m/large", 250, ct);
        Assert.Equal(["m/large"], Resident());
        Assert.Null((await host.GetLoadAsync()).Model(model));
        Assert.Empty((await host.GetInfoAsync()).LoadedModels);
        Assert.Empty(silo.ServiceProvider.GetRequiredService<HostModels>().Loaded);

        var after = await host.EmbedAsync(new EmbedWork(model, ["loaded, then unloaded"]), ct);
        Assert.Equal(before.Vectors, after.Vectors);
        Assert.Equal([canonical], Resident());
        Assert.Equal(2, Memory.Loads[canonical]);
        Assert.True(Memory.Evictions >= 2);
    }

    /// <summary>A load of <paramref name="mib"/> MiB through the host's memory, as a model grain's load takes its turn.</summary>
    private async Task LoadAsync(string model, long mib, CancellationToken ct)
    {
        using var turn = await Memory.BeginLoadAsync(model, mib * MiB, ct);
        await turn.CompleteAsync();
    }

    private List<string> Resident() => [.. Memory.Describe().Models.Select(m => m.Name)];
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class HostMemoryLruCollection
{
    public const string Name = "Host memory, alone";
}
