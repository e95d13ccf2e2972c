using OrleansGpu.Api.Routing;
using OrleansGpu.Grains;

namespace OrleansGpu.Tests.Cluster;

/// <summary>
/// Work sent where its model is warm, over three real silos of its own (in one process) with the real MiniLM on the CPU
/// under several names: loads counted across the hosts for a mixed workload of four models, and pre-warming.
/// </summary>
public sealed class WarmRoutingTests(GpuClusterFixture fixture) : IClassFixture<GpuClusterFixture>
{
    private const int Requests = 160;

    [Fact]
    public async Task A_mixed_workload_of_four_models_loads_each_on_fewer_hosts_with_warm_routing_than_with_least_busy_alone()
    {
        var ct = TestContext.Current.CancellationToken;
        var coldOnly = await RunMixedWorkloadAsync("acme/least-busy", new RoutingOptions { PreferWarm = false }, ct);
        var warm = await RunMixedWorkloadAsync("acme/warm", new RoutingOptions(), ct);

        var report = $"hosts per model, least-busy alone: {Describe(coldOnly)}; with warm routing: {Describe(warm)}";
        TestContext.Current.SendDiagnosticMessage(report);
        Assert.All(warm.Values, hosts => Assert.InRange(hosts, 1, 2));
        Assert.True(warm.Values.Sum() < coldOnly.Values.Sum(), report);
        Assert.True(coldOnly.Values.Max() == 3, report);
    }

    [Fact]
    public async Task A_model_whose_warm_host_is_busy_is_prewarmed_on_one_more_host_once()
    {
        var ct = TestContext.Current.CancellationToken;
        const string model = "acme/prewarmed";
        fixture.AddModel(model);
        var hosts = fixture.HostNames;
        var warmHost = fixture.Cluster.Client.GetGrain<IGpuHostGrain>(hosts[0]);
        await warmHost.EmbedAsync(new EmbedWork(model, ["load it here"]), ct);

        // The warm host gets a long job of another model (another front's, say): it is busy, the others idle.
        var texts = Enumerable.Range(0, 400).Select(i => string.Join(' ', Enumerable.Repeat($"keeping the warm host busy {i}", 12))).ToArray();
        var busy = warmHost.EmbedAsync(new EmbedWork("all-MiniLM-L6-v2", texts), ct);
        var probe = fixture.NewRouter(RoutingStrategy.LeastBusy);
        HostLoad? loaded = null;
        await WaitUntil(async () =>
        {
            await probe.RefreshAsync(ct);
            loaded = probe.Hosts.Single(h => h.Host == hosts[0]);
            return loaded.Tokens > 0;
        });

        // A cold-load threshold between the busy host's queue and twice it: requests stay on the warm host, and half the
        // threshold is passed, so the front pre-warms the model elsewhere.
        var loadSeconds = Math.Max(1.0, loaded!.Model(model)!.LoadSeconds);
        var router = fixture.NewRouter(new RoutingOptions { ColdLoadTokensPerSecond = (long)(loaded.Tokens * 1.5 / loadSeconds), PrewarmInterval = TimeSpan.FromMinutes(5) });
        await router.RefreshAsync(ct);
        var first = await router.ExecuteAsync(new HostWork(4, model), (h, t) => h.EmbedAsync(new EmbedWork(model, ["routed while busy"]), t), ct);
        Assert.Equal(hosts[0], first.Host);
        Assert.Equal(1, router.Prewarms);

        // The model becomes ready on exactly one more host, and further requests start no second pre-warm.
        await WaitUntil(async () => (await HostsWithAsync(model)).Count == 2);
        for (var i = 0; i < 5; i++)
        {
            await router.RefreshAsync(ct);
            await router.ExecuteAsync(new HostWork(4, model), (h, t) => h.EmbedAsync(new EmbedWork(model, [$"again {i}"]), t), ct);
        }

        Assert.Equal(1, router.Prewarms);
        Assert.Equal(2, (await HostsWithAsync(model)).Count);
        await busy;
    }

    [Fact]
    public async Task On_cpu_hosts_that_answer_fp16_in_fp32_fp16_requests_go_where_the_model_is_warm_in_fp32_and_load_nothing_more()
    {
        var ct = TestContext.Current.CancellationToken;
        const string model = "acme/fp16-in-fp32";
        fixture.AddModel(model);
        var hosts = fixture.HostNames;
        var warmHost = hosts[1];
        await fixture.Cluster.Client.GetGrain<IGpuHostGrain>(warmHost).EmbedAsync(new EmbedWork(model, ["load it here in fp32"]), ct);

        var router = fixture.NewRouter(new RoutingOptions());
        await router.RefreshAsync(ct);

        // The host says an fp16 request runs in fp32 there (no GPU_FP16_ON_CPU), where the model is ready.
        var reported = router.Hosts.Single(h => h.Host == warmHost).Model(model)!;
        Assert.Equal(Precisions.Fp32, reported.RunsIn(Precisions.Fp16));
        Assert.True(reported.IsReadyFor(ModelUse.Embedding, Precisions.Fp16));

        for (var i = 0; i < 6; i++)
        {
            var work = new EmbedWork(model, [$"fp16 asked {i}"], Precision: Precisions.Fp16);
            var batch = await router.ExecuteAsync(new HostWork(4, model, ModelUse.Embedding, Precisions.Fp16), (h, t) => h.EmbedAsync(work, t), ct);
            Assert.Equal((warmHost, Precisions.Fp32), (batch.Host, batch.ComputePrecision));
        }

        Assert.Equal([warmHost], await HostsWithAsync(model));
    }

    /// <summary>
    /// Runs <see cref="Requests"/> requests of the <see cref="MixedWorkload"/> through a router with
    /// <paramref name="options"/>; returns on how many hosts each model loaded.
    /// </summary>
    private async Task<Dictionary<string, int>> RunMixedWorkloadAsync(string prefix, RoutingOptions options, CancellationToken ct)
    {
        var run = await MixedWorkload.RunAsync(fixture, prefix, options, Requests, ct);
        var loaded = new Dictionary<string, int>();
        foreach (var model in run.Models)
        {
            loaded[model] = (await HostsWithAsync(model)).Count;
        }

        // Every host a request was served by loaded the model there: the count is the loads the workload caused.
        Assert.All(run.Models, m => Assert.Equal(run.Served.Where(s => s.Model == m).Select(s => s.Host).Distinct().Count(), loaded[m]));
        return loaded;
    }

    private async Task<List<string>> HostsWithAsync(string model)
    {
        var hosts = new List<string>();
        foreach (var host in fixture.HostNames)
        {
            var info = await fixture.Cluster.Client.GetGrain<IGpuHostGrain>(host).GetInfoAsync();
            if (info.LoadedModels.Any(m => m.Name == model && m.Embedding))
            {
                hosts.Add(host);
            }
        }

        return hosts;
    }

    private static string Describe(Dictionary<string, int> hostsPerModel) =>
        $"{string.Join(", ", hostsPerModel.Select(m => $"{m.Key} {m.Value}"))} ({hostsPerModel.Values.Sum()} loads)";

    private static async Task WaitUntil(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not reached in 90 s");
            await Task.Delay(50);
        }
    }
}
