using Orleans.Runtime;
using OrleansGpu.Api.Routing;
using OrleansGpu.Grains;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Cluster;

[CollectionDefinition(Name)]
public sealed class ClusterCollection : ICollectionFixture<GpuClusterFixture>
{
    public const string Name = "Cluster";
}

/// <summary>Routing over three real silos (in one process), with the real MiniLM on the CPU.</summary>
[Collection(ClusterCollection.Name)]
public sealed class RoutingTests(GpuClusterFixture fixture)
{
    private static EmbedWork Small(string text = "route me") => new("all-MiniLM-L6-v2", [text]);

    [Fact]
    public async Task Every_silo_is_a_gpu_host_and_reports_its_load()
    {
        var router = fixture.NewRouter(RoutingStrategy.LeastBusy);
        await router.RefreshAsync(TestContext.Current.CancellationToken);
        Assert.Equal(fixture.HostNames.Order(), router.Hosts.Select(h => h.Host).Order());
        Assert.All(router.Hosts, h => Assert.Equal("cpu", h.Device));
        Assert.All(router.Hosts, h => Assert.Equal(fixture.MaxConcurrent, h.MaxConcurrent));
    }

    [Fact]
    public async Task Round_robin_alternates_over_all_hosts()
    {
        var router = fixture.NewRouter(RoutingStrategy.RoundRobin);
        await router.RefreshAsync(TestContext.Current.CancellationToken);
        var hosts = new List<string>();
        for (var i = 0; i < 6; i++)
        {
            var batch = await router.ExecuteAsync(1, (h, ct) => h.EmbedAsync(Small(), ct), TestContext.Current.CancellationToken);
            hosts.Add(batch.Host);
        }

        Assert.Equal(3, hosts.Distinct().Count());
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(hosts[i], hosts[i + 3]);
            Assert.NotEqual(hosts[i], hosts[i + 1]);
        }
    }

    [Fact]
    public async Task Least_busy_sends_work_to_the_idle_host()
    {
        var ct = TestContext.Current.CancellationToken;
        var router = fixture.NewRouter(RoutingStrategy.LeastBusy);
        await router.RefreshAsync(ct);
        var hosts = fixture.HostNames;
        var idle = hosts[2];

        // Load the other two hosts with long jobs sent straight to their host grains (another front, say).
        var longTexts = Enumerable.Range(0, 120).Select(i => string.Join(" ", Enumerable.Repeat($"busy text number {i}", 20))).ToArray();
        var busyWork = new[] { hosts[0], hosts[1] }
            .Select(h => fixture.Cluster.Client.GetGrain<IGpuHostGrain>(h).EmbedAsync(new EmbedWork("all-MiniLM-L6-v2", longTexts), ct))
            .ToList();
        await WaitUntil(async () =>
        {
            await router.RefreshAsync(ct);
            return router.Hosts.Count(h => h.Tokens > 0) == 2;
        });

        for (var i = 0; i < 3; i++)
        {
            var batch = await router.ExecuteAsync(1, (h, token) => h.EmbedAsync(Small(), token), ct);
            Assert.Equal(idle, batch.Host);
        }

        await Task.WhenAll(busyWork);
    }

    [Fact]
    public async Task A_model_loads_once_per_host_however_many_callers_come_first()
    {
        var ct = TestContext.Current.CancellationToken;
        var host = fixture.HostNames[1];
        var model = fixture.Cluster.Client.GetGrain<IModelGrain>($"{host}/{TestModelsFolder.CopyName}");
        var calls = Enumerable.Range(0, 12)
            .Select(i => fixture.Cluster.Client.GetGrain<IGpuHostGrain>(host).EmbedAsync(new EmbedWork(TestModelsFolder.CopyName, [$"text {i}"]), ct))
            .ToList();
        await Task.WhenAll(calls);

        var description = await model.DescribeAsync();
        Assert.NotNull(description);
        Assert.Equal(1, description.Loads);
        Assert.True(description.Embedding);
    }

    [Fact]
    public async Task A_bare_name_and_its_full_name_are_one_model_on_a_host()
    {
        var ct = TestContext.Current.CancellationToken;
        var host = fixture.HostNames[2];
        var grain = fixture.Cluster.Client.GetGrain<IGpuHostGrain>(host);
        await grain.EmbedAsync(new EmbedWork("all-MiniLM-L6-v2", ["short name"]), ct);
        await grain.EmbedAsync(new EmbedWork("sentence-transformers/all-MiniLM-L6-v2", ["full name"]), ct);

        var info = await grain.GetInfoAsync();
        var model = Assert.Single(info.LoadedModels, m => m.Name.EndsWith("all-MiniLM-L6-v2", StringComparison.Ordinal));
        Assert.Equal("sentence-transformers/all-MiniLM-L6-v2", model.Name);
        Assert.True(model.Embedding);
    }

    [Fact]
    public async Task A_second_model_loads_on_demand_from_the_models_folder()
    {
        var ct = TestContext.Current.CancellationToken;
        var router = fixture.NewRouter(RoutingStrategy.LeastBusy);
        var text = "on demand model";
        var copy = await router.ExecuteAsync(1, (h, t) => h.EmbedAsync(new EmbedWork(TestModelsFolder.CopyName, [text]), t), ct);
        var original = await router.ExecuteAsync(1, (h, t) => h.EmbedAsync(Small(text), t), ct);

        Assert.Equal(TestModelsFolder.CopyName, copy.Model);
        Assert.Equal(384, copy.Dimensions);
        Assert.Equal(original.Vector(0).ToArray(), copy.Vector(0).ToArray());
        var info = await fixture.Cluster.Client.GetGrain<IGpuHostGrain>(copy.Host).GetInfoAsync();
        Assert.Contains(info.LoadedModels, m => m.Name == TestModelsFolder.CopyName);
    }

    [Fact]
    public async Task An_unknown_model_is_a_client_error_and_not_retried()
    {
        var router = fixture.NewRouter(RoutingStrategy.LeastBusy);
        var error = await Assert.ThrowsAsync<InvalidWorkException>(() =>
            router.ExecuteAsync(1, (h, t) => h.EmbedAsync(new EmbedWork("nobody/nothing", ["x"]), t), TestContext.Current.CancellationToken));
        Assert.Equal(ErrorCodes.ModelNotFound, error.Code);
        Assert.Contains("nobody/nothing", error.Message);
        Assert.Equal(0, router.Retries);
    }

    [Fact]
    public async Task A_deterministic_failure_runs_once_marks_no_host_failed_and_propagates_as_it_is()
    {
        var ct = TestContext.Current.CancellationToken;
        var router = fixture.NewRouter(RoutingStrategy.RoundRobin);
        await router.RefreshAsync(ct);
        var attempts = 0;
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => router.ExecuteAsync<EmbeddingBatch>(1, (h, t) =>
        {
            Interlocked.Increment(ref attempts);
            throw new InvalidOperationException("a bug, the same on every host");
        }, ct));

        Assert.Equal("a bug, the same on every host", error.Message);
        Assert.Equal(1, attempts);
        Assert.Equal(0, router.Retries);

        // No host was put aside: the next requests still go round all of them.
        var hosts = new HashSet<string>();
        for (var i = 0; i < 3; i++)
        {
            hosts.Add((await router.ExecuteAsync(1, (h, t) => h.EmbedAsync(Small(), t), ct)).Host);
        }

        Assert.Equal(3, hosts.Count);
    }

    [Fact]
    public async Task A_bad_model_file_on_every_host_is_tried_once_on_each_and_answered_as_the_model_failing_to_load_not_as_no_host()
    {
        var ct = TestContext.Current.CancellationToken;
        const string broken = "acme/broken-model";
        var folder = Path.Combine(fixture.ModelsDirectory, broken);
        Directory.CreateDirectory(folder);
        foreach (var file in Directory.GetFiles(Path.Combine(fixture.ModelsDirectory, TestModelsFolder.CopyName)))
        {
            File.Copy(file, Path.Combine(folder, Path.GetFileName(file)), overwrite: true);
        }

        foreach (var onnx in Directory.GetFiles(folder, "*.onnx"))
        {
            File.WriteAllBytes(onnx, [.. Enumerable.Range(0, 4096).Select(i => (byte)(i * 37))]);
        }

        var router = fixture.NewRouter(RoutingStrategy.LeastBusy);
        var attempts = 0;
        var error = await Record.ExceptionAsync(() => router.ExecuteAsync(1, (h, t) =>
        {
            Interlocked.Increment(ref attempts);
            return h.EmbedAsync(new EmbedWork(broken, ["x"]), t);
        }, ct));

        // One host's copy may be damaged where another's is fine, so each host is tried, once; when every copy fails,
        // the client hears that the model failed to load (a 500 model_load_failed), not that no host is there.
        var failed = Assert.IsType<InvalidWorkException>(error);
        Assert.Equal(HostFaultCodes.ModelLoadFailed, failed.Code);
        Assert.Equal(3, attempts);
        Assert.Equal(3, router.ModelFailures);
    }

    [Fact]
    public async Task A_transient_failure_is_sent_again_to_another_host()
    {
        var ct = TestContext.Current.CancellationToken;
        var router = fixture.NewRouter(RoutingStrategy.RoundRobin);
        await router.RefreshAsync(ct);
        var failures = new Exception[] { new SiloUnavailableException("silo gone"), new TimeoutException("no answer") };
        foreach (var failure in failures)
        {
            var tried = new List<string>();
            var batch = await router.ExecuteAsync(1, (h, t) =>
            {
                lock (tried)
                {
                    tried.Add(h.GetPrimaryKeyString());
                    if (tried.Count == 1)
                    {
                        throw failure;
                    }
                }

                return h.EmbedAsync(Small(), t);
            }, ct);

            Assert.Equal(2, tried.Count);
            Assert.NotEqual(tried[0], tried[1]);
            Assert.Equal(tried[1], batch.Host);
        }

        Assert.Equal(2, router.Retries);
    }

    [Fact]
    public async Task Hosts_that_are_all_busy_give_a_busy_error_not_a_host_failure()
    {
        var ct = TestContext.Current.CancellationToken;
        var router = fixture.NewRouter(RoutingStrategy.LeastBusy);
        await router.RefreshAsync(ct);
        var error = await Assert.ThrowsAsync<NoHostAvailableException>(() =>
            router.ExecuteAsync<EmbeddingBatch>(1, (h, t) => throw new HostBusyException(h.GetPrimaryKeyString(), 9), ct));
        Assert.True(error.Busy);
        Assert.IsType<HostBusyException>(error.InnerException);
        Assert.Equal(0, router.Retries);
    }

    [Fact]
    public async Task Status_shows_running_jobs_with_their_progress()
    {
        var ct = TestContext.Current.CancellationToken;
        var host = fixture.HostNames[0];
        var grain = fixture.Cluster.Client.GetGrain<IGpuHostGrain>(host);
        var texts = Enumerable.Range(0, 200).Select(i => string.Join(' ', Enumerable.Repeat($"progress {i}", 30))).ToArray();
        var job = grain.EmbedAsync(new EmbedWork("all-MiniLM-L6-v2", texts), ct);

        JobStatus? seen = null;
        await WaitUntil(async () =>
        {
            var status = await grain.GetStatusAsync();
            seen = status.Jobs.FirstOrDefault(j => j.Items == 200 && j.State == "running" && j.Progress > 0);
            return seen is not null || job.IsCompleted;
        });
        await job;

        Assert.NotNull(seen);
        Assert.Equal("embed", seen.Type);
        Assert.InRange(seen.Progress, 0.0, 1.0);
        Assert.NotNull(seen.StartedAt);
        Assert.DoesNotContain((await grain.GetStatusAsync()).Jobs, j => j.Id == seen.Id);
    }

    private static async Task WaitUntil(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not reached in 60 s");
            await Task.Delay(20);
        }
    }
}
