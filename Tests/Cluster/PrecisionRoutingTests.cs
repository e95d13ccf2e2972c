using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using OrleansGpu.Api.Routing;
using OrleansGpu.Grains;

namespace OrleansGpu.Tests.Cluster;

/// <summary>
/// Warm routing in the precision a request runs in, over three real silos (in one process, on loopback) with the real
/// MiniLM on the CPU, whose hosts run fp16 requests with the fp16 graph (<c>GPU_FP16_ON_CPU</c>: on the CPU, the stand-in
/// of CUDA hosts, where fp16 is its own graph and sessions). A model warm in fp32 on two hosts and in fp16 on the third:
/// fp16 requests go to the third and fp32 requests to the other two, and no host loads anything more. (Warmth that
/// ignored the precision would send fp16 requests to the least busy of all three, each a cold fp16 load there.)
/// </summary>
public sealed class PrecisionRoutingTests(PrecisionRoutingTests.Fp16Hosts fixture) : IClassFixture<PrecisionRoutingTests.Fp16Hosts>
{
    private const int Requests = 60;
    private const int Clients = 8;

    [Fact]
    public async Task Fp16_requests_go_to_the_host_warm_in_fp16_and_fp32_requests_to_the_hosts_warm_in_fp32_with_no_extra_loads()
    {
        var ct = TestContext.Current.CancellationToken;
        const string model = "acme/precision-routed";
        fixture.AddModel(model);
        var hosts = fixture.HostNames;
        string[] fp32Hosts = [hosts[0], hosts[1]];
        var fp16Host = hosts[2];
        foreach (var host in fp32Hosts)
        {
            Assert.Empty(await fixture.Cluster.Client.GetGrain<IGpuHostGrain>(host).WarmAsync([new WarmRequest(model, ModelUse.Embedding, Precisions.Fp32)]));
        }

        Assert.Empty(await fixture.Cluster.Client.GetGrain<IGpuHostGrain>(fp16Host).WarmAsync([new WarmRequest(model, ModelUse.Embedding, Precisions.Fp16)]));
        var loadsBefore = Loads(model);
        Assert.All(hosts, h => Assert.Equal(1, loadsBefore[h]));

        var router = fixture.NewRouter(new RoutingOptions());
        await router.StartAsync(ct);
        await router.RefreshAsync(ct);

        // What the hosts report: per precision, what is ready, and that an fp16 request runs in fp16 on each.
        var reported = router.Hosts.ToDictionary(h => h.Host, h => h.Model(model)!);
        Assert.All(hosts, h => Assert.Equal(Precisions.Fp16, reported[h].RunsIn(Precisions.Fp16)));
        Assert.True(reported[fp16Host].IsReadyFor(ModelUse.Embedding, Precisions.Fp16));
        Assert.False(reported[fp16Host].IsWarmFor(ModelUse.Embedding, Precisions.Fp32));
        Assert.All(fp32Hosts, h => Assert.True(reported[h].IsReadyFor(ModelUse.Embedding, Precisions.Fp32)));
        Assert.All(fp32Hosts, h => Assert.False(reported[h].IsWarmFor(ModelUse.Embedding, Precisions.Fp16)));

        // Both precisions at once, from several clients, so that the warm hosts are busy while the others are idle.
        var next = -1;
        var served = new ConcurrentBag<(string Asked, string Host, string Computed)>();
        await Task.WhenAll(Enumerable.Range(0, Clients).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < Requests)
            {
                var precision = i % 2 == 0 ? Precisions.Fp16 : Precisions.Fp32;
                var work = new EmbedWork(model, [$"request {i} in {precision}", "a second text"], Precision: precision);
                var batch = await router.ExecuteAsync(new HostWork(8, model, ModelUse.Embedding, precision), (h, t) => h.EmbedAsync(work, t), ct);
                served.Add((precision, batch.Host, batch.ComputePrecision));
            }
        }));
        await router.StopAsync(ct);

        var report = string.Join(", ", served.GroupBy(s => (s.Asked, s.Host)).OrderBy(g => g.Key).Select(g => $"{g.Key.Asked} on {g.Key.Host}: {g.Count()}"));
        TestContext.Current.SendDiagnosticMessage(report);
        Assert.Equal(Requests, served.Count);
        Assert.All(served.Where(s => s.Asked == Precisions.Fp16), s => Assert.Equal((fp16Host, Precisions.Fp16), (s.Host, s.Computed)));
        Assert.All(served.Where(s => s.Asked == Precisions.Fp32), s => Assert.Contains(s.Host, fp32Hosts));
        Assert.All(served.Where(s => s.Asked == Precisions.Fp32), s => Assert.Equal(Precisions.Fp32, s.Computed));

        // No host loaded the model again, in either precision, and each still holds only the precision it had.
        Assert.Equal(loadsBefore, Loads(model));
        foreach (var host in hosts)
        {
            var info = await fixture.Cluster.Client.GetGrain<IGpuHostGrain>(host).GetInfoAsync();
            var loaded = info.LoadedModels.Single(m => m.Name == model);
            Assert.Equal([host == fp16Host ? Precisions.Fp16 : Precisions.Fp32], loaded.LoadedPrecisions);
        }
    }

    /// <summary>The loads of <paramref name="model"/> per host, as the hosts count them (each precision's load counts).</summary>
    private Dictionary<string, long> Loads(string model) => fixture.Cluster.GetActiveSilos().ToDictionary(
        fixture.Name,
        s => s.ServiceProvider.GetRequiredService<HostMemory>().Loads.GetValueOrDefault(model));

    public sealed class Fp16Hosts : GpuClusterFixture
    {
        public override bool Fp16OnCpu => true;
    }
}
