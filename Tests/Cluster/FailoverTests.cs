using System.Diagnostics;
using OrleansGpu.Api.Routing;
using OrleansGpu.Grains;

namespace OrleansGpu.Tests.Cluster;

/// <summary>A cluster of its own: this test kills one of its silos.</summary>
public sealed class FailoverTests : IClassFixture<GpuClusterFixture>
{
    private readonly GpuClusterFixture _fixture;

    public FailoverTests(GpuClusterFixture fixture) => _fixture = fixture;

    [Fact]
    public async Task Two_hundred_concurrent_requests_all_succeed_while_a_silo_is_killed()
    {
        var ct = TestContext.Current.CancellationToken;
        var router = _fixture.NewRouter(RoutingStrategy.RoundRobin);
        await router.StartAsync(ct);
        await router.RefreshAsync(ct);
        var victim = _fixture.Cluster.GetActiveSilos().Last();
        var victimName = _fixture.Name(victim);

        var started = 0;
        var worst = TimeSpan.Zero;
        var hostsUsed = new System.Collections.Concurrent.ConcurrentBag<string>();
        var requests = Enumerable.Range(0, 200).Select(async i =>
        {
            await Task.Delay(i * 15, ct); // spread over ~3 s so the kill lands in the middle
            Interlocked.Increment(ref started);
            var watch = Stopwatch.StartNew();
            var texts = Enumerable.Range(0, 4).Select(k => $"request {i} sentence {k} about failover").ToArray();
            var batch = await router.ExecuteAsync(10, (h, t) => h.EmbedAsync(new EmbedWork("all-MiniLM-L6-v2", texts), t), ct);
            lock (hostsUsed)
            {
                worst = watch.Elapsed > worst ? watch.Elapsed : worst;
            }

            hostsUsed.Add(batch.Host);
            Assert.Equal(4, batch.Count);
            return batch;
        }).ToList();

        while (Volatile.Read(ref started) < 80)
        {
            await Task.Delay(10, ct);
        }

        await _fixture.Cluster.KillSiloAsync(victim);
        var results = await Task.WhenAll(requests);
        await router.StopAsync(ct);

        Assert.Equal(200, results.Length);
        Assert.All(results, r => Assert.Equal(384, r.Dimensions));
        Assert.Contains(victimName, hostsUsed); // the victim served before it died
        TestContext.Current.SendDiagnosticMessage($"worst latency during failover: {worst.TotalMilliseconds:0} ms");
        Assert.DoesNotContain(victimName, router.Hosts.Select(h => h.Host));
    }
}
