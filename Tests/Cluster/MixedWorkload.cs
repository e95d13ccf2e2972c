using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using OrleansGpu.Api.Routing;
using OrleansGpu.Grains;

namespace OrleansGpu.Tests.Cluster;

/// <summary>One run of <see cref="MixedWorkload"/>: its models, which host served each request, and how long it took.</summary>
internal sealed record MixedWorkloadRun(IReadOnlyList<string> Models, IReadOnlyList<(string Model, string Host)> Served, TimeSpan Took)
{
    /// <summary>The loads of this run's models, as the hosts count them (<c>orleansgpu_host_model_loads_total</c>).</summary>
    public long Loads(GpuClusterFixture fixture) => fixture.Cluster.GetActiveSilos()
        .Select(s => s.ServiceProvider.GetRequiredService<HostMemory>().Loads)
        .Sum(loads => Models.Sum(m => loads.GetValueOrDefault(m)));
}

/// <summary>
/// The mixed workload of the warm-routing tests: <see cref="Models"/> copies of the real MiniLM under names of their own,
/// and request i for model i mod <see cref="Models"/>, sent by <see cref="Clients"/> clients through one router.
/// </summary>
internal static class MixedWorkload
{
    public const int Models = 4;
    public const int Clients = 8;

    public static async Task<MixedWorkloadRun> RunAsync(GpuClusterFixture fixture, string prefix, RoutingOptions options, int requests, CancellationToken ct)
    {
        var models = Enumerable.Range(0, Models).Select(i => $"{prefix}-{i}").ToArray();
        foreach (var model in models)
        {
            fixture.AddModel(model);
        }

        var router = fixture.NewRouter(options);
        await router.StartAsync(ct);
        await router.RefreshAsync(ct);
        var next = -1;
        var served = new ConcurrentBag<(string Model, string Host)>();
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, Clients).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < requests)
            {
                var model = models[i % Models];
                var batch = await router.ExecuteAsync(new HostWork(8, model), (h, t) => h.EmbedAsync(new EmbedWork(model, [$"request {i} for {model}", "a second text"]), t), ct);
                Assert.Equal(2, batch.Count);
                served.Add((model, batch.Host));
            }
        }));
        var took = clock.Elapsed;
        await router.StopAsync(ct);

        Assert.Equal(requests, served.Count);
        return new MixedWorkloadRun(models, [.. served], took);
    }
}
