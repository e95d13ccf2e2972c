using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using OrleansGpu.Api.Routing;
using OrleansGpu.Grains;

namespace OrleansGpu.Tests.Cluster;

/// <summary>A cluster of its own: this test stops one of its silos, as SIGTERM does (Orleans' graceful stop).</summary>
public sealed class DrainTests(GpuClusterFixture fixture) : IClassFixture<GpuClusterFixture>
{
    private const string Model = "all-MiniLM-L6-v2";

    [Fact]
    public async Task A_stopping_silo_finishes_the_job_it_holds_refuses_new_work_and_no_request_fails()
    {
        var ct = TestContext.Current.CancellationToken;
        var router = fixture.NewRouter(RoutingStrategy.LeastBusy);
        await router.StartAsync(ct);
        await router.RefreshAsync(ct);
        var victim = fixture.Cluster.GetActiveSilos().Last();
        var name = fixture.Name(victim);
        var host = fixture.Cluster.Client.GetGrain<IGpuHostGrain>(name);

        // A long job the victim holds when it is told to stop.
        var texts = Enumerable.Range(0, 240).Select(i => string.Join(' ', Enumerable.Repeat($"a job held through the drain {i}", 12))).ToArray();
        var held = host.EmbedAsync(new EmbedWork(Model, texts), ct);
        await WaitUntil(async () => (await host.GetLoadAsync()).RunningJobs > 0);

        // Clients keep sending through the router the whole time; any failure fails the test.
        using var stopLoad = new CancellationTokenSource();
        var served = new ConcurrentBag<string>();
        var load = Task.WhenAll(Enumerable.Range(0, 8).Select(async worker =>
        {
            for (var i = 0; !stopLoad.IsCancellationRequested; i++)
            {
                var batch = await router.ExecuteAsync(new HostWork(4, Model), (h, t) => h.EmbedAsync(new EmbedWork(Model, [$"worker {worker} request {i}"]), t), ct);
                served.Add(batch.Host);
            }
        }));

        // The process's shutdown allows the drain (SIGTERM stops the host within that time, graceful or not).
        var shutdown = victim.ServiceProvider.GetRequiredService<IOptions<HostOptions>>().Value.ShutdownTimeout;
        Assert.True(shutdown >= victim.ServiceProvider.GetRequiredService<GpuHostOptions>().DrainTimeout, $"shutdown timeout {shutdown}");
        var stopping = fixture.Cluster.StopSiloAsync(victim);

        // While it drains it says so, and refuses new work with the failure the front sends elsewhere.
        await WaitUntil(async () => (await host.GetLoadAsync()).Availability == HostAvailability.Draining);
        var refused = await Assert.ThrowsAsync<HostDrainingException>(() => host.EmbedAsync(new EmbedWork(Model, ["too late"]), ct));
        Assert.Equal(name, refused.Host);
        Assert.Equal(HostFailure.Draining, HostFailures.Classify(refused, ct, CancellationToken.None, CancellationToken.None));
        Assert.False(held.IsCompleted, "the held job was still running when the drain began");

        // The job it held finished there, whole, before the silo left.
        var result = await held;
        Assert.Equal(name, result.Host);
        Assert.Equal(texts.Length, result.Count);
        await stopping;

        var afterStop = served.Count;
        await WaitUntil(() => Task.FromResult(served.Count >= afterStop + 20));
        await stopLoad.CancelAsync();
        await load;
        await router.RefreshAsync(ct);
        await router.StopAsync(ct);

        Assert.DoesNotContain(name, router.Hosts.Select(h => h.Host));
        Assert.Equal(2, router.Hosts.Count);
    }

    private static async Task WaitUntil(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not reached in 90 s");
            await Task.Delay(20);
        }
    }
}
