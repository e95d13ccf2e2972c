using Microsoft.Extensions.DependencyInjection;
using OrleansGpu.Api.Routing;
using OrleansGpu.Grains;

namespace OrleansGpu.Tests.Cluster;

/// <summary>
/// Cold loads avoided by warm routing, counted as the hosts count them (<c>orleansgpu_host_model_loads_total</c>): three
/// real silos (in one process) with the real MiniLM on the CPU under four names, 200 requests round-robin over the four
/// models from eight clients. Round-robin routing, which ignores where models are, loads every model on every host
/// (4 × 3 = 12 loads: request i goes to host i mod 3 with model i mod 4, and 3 and 4 share no factor). Least-busy with
/// warm routing loads each model where its first request went and keeps it there unless that host is much busier, so
/// we expect 4 loads, up to 8 when a model's queue grows enough for one pre-warm elsewhere.
/// </summary>
public sealed class ColdLoadTests(GpuClusterFixture fixture) : IClassFixture<GpuClusterFixture>
{
    private const int Models = MixedWorkload.Models;
    private const int Requests = 200;
    private const int Clients = MixedWorkload.Clients;

    [Fact]
    public async Task Warm_routing_loads_four_models_on_three_hosts_at_most_twice_each_where_round_robin_loads_each_on_every_host()
    {
        var ct = TestContext.Current.CancellationToken;
        var roundRobin = await RunAsync("acme/cold-round-robin", new RoutingOptions { Strategy = RoutingStrategy.RoundRobin }, ct);
        var warm = await RunAsync("acme/cold-warm", new RoutingOptions(), ct);

        var report = $"loads across 3 hosts for 4 models, {Requests} requests from {Clients} clients: round-robin {roundRobin.Loads} ({roundRobin.Took.TotalSeconds:0.0} s), "
            + $"warm routing {warm.Loads} ({warm.Took.TotalSeconds:0.0} s)";
        TestContext.Current.TestOutputHelper?.WriteLine(report);
        Assert.Equal(Models * 3, roundRobin.Loads);
        Assert.InRange(warm.Loads, Models, Models * 2);

        // The hosts' default budget on the CPU: half of the memory the process may use.
        var memory = fixture.Cluster.GetActiveSilos().First().ServiceProvider.GetRequiredService<HostMemory>();
        Assert.Equal(GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 2, memory.Budget);
    }

    internal static async Task<(long Loads, TimeSpan Took)> RunAsync(GpuClusterFixture fixture, string prefix, RoutingOptions options, CancellationToken ct)
    {
        var run = await MixedWorkload.RunAsync(fixture, prefix, options, Requests, ct);
        return (run.Loads(fixture), run.Took);
    }

    private Task<(long Loads, TimeSpan Took)> RunAsync(string prefix, RoutingOptions options, CancellationToken ct) => RunAsync(fixture, prefix, options, ct);
}

/// <summary>
/// The same workload on hosts whose memory holds about three MiniLMs (600 MiB; a MiniLM load holds about 190 MB on the
/// CPU), so that a host may not keep all four models: routing that ignores where models are loads each on every host,
/// and again after an unload when the budget runs out; warm routing keeps each model where it is. (How many reloads
/// round-robin causes varies: on the CPU, memory freed by an unload is often reused by the next load without the
/// working set growing, so that load counts only its weights and more fit than the first measurements suggest.)
/// </summary>
public sealed class ColdLoadUnderBudgetTests(ColdLoadUnderBudgetTests.Budgeted fixture) : IClassFixture<ColdLoadUnderBudgetTests.Budgeted>
{
    [Fact]
    public async Task Under_a_memory_budget_warm_routing_loads_each_model_on_one_host_where_round_robin_loads_each_on_every_host_and_more()
    {
        var ct = TestContext.Current.CancellationToken;
        var roundRobin = await ColdLoadTests.RunAsync(fixture, "acme/budget-round-robin", new RoutingOptions { Strategy = RoutingStrategy.RoundRobin }, ct);
        var evictionsAfterRoundRobin = Evictions();
        var warm = await ColdLoadTests.RunAsync(fixture, "acme/budget-warm", new RoutingOptions(), ct);
        var warmEvictions = Evictions() - evictionsAfterRoundRobin;

        var report = $"under a 600 MiB budget per host: round-robin {roundRobin.Loads} loads, {evictionsAfterRoundRobin} unloads ({roundRobin.Took.TotalSeconds:0.0} s); "
            + $"warm routing {warm.Loads} loads, {warmEvictions} unloads ({warm.Took.TotalSeconds:0.0} s)";
        TestContext.Current.TestOutputHelper?.WriteLine(report);
        Assert.True(roundRobin.Loads >= 12, report);
        Assert.InRange(warm.Loads, 4, 8);
        Assert.True(warm.Loads < roundRobin.Loads, report);
    }

    private long Evictions() => fixture.Cluster.GetActiveSilos().Sum(s => s.ServiceProvider.GetRequiredService<HostMemory>().Evictions);

    public sealed class Budgeted : GpuClusterFixture
    {
        public override string? MemoryBudget => "600MiB";
    }
}
