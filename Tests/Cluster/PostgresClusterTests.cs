using System.Diagnostics;

namespace OrleansGpu.Tests.Cluster;

/// <summary>
/// The production deployment in real processes: PostgreSQL membership, separate Silo.Gpu processes, Api.Front as a
/// pure client, mutual TLS between them all. Skipped, with the reason, when no PostgreSQL is configured.
/// </summary>
public sealed class PostgresClusterTests
{
    private static void RequirePostgres() => Assert.SkipUnless(ProcessCluster.BaseConnectionString is not null, ProcessCluster.SkipReason);

    [Fact]
    public async Task Five_hundred_requests_at_concurrency_16_all_succeed_while_a_silo_is_killed()
    {
        RequirePostgres();
        await using var cluster = await ProcessCluster.CreateAsync();
        foreach (var host in new[] { "gpu-a", "gpu-b", "gpu-c" })
        {
            cluster.StartSilo(host);
        }

        await cluster.StartFrontAsync();
        await cluster.WaitForHostsAsync(3, TimeSpan.FromSeconds(120));
        cluster.AssertTlsOn();

        var killedAt = Stopwatch.StartNew();
        var killed = 0;
        var victimServed = 0;
        var load = await cluster.LoadAsync(500, 16, async done =>
        {
            // Killed while serving: once a third of the load is done and it has answered (the front routes to a host
            // from its first load report after joining, which a busy machine can delay past the first requests).
            if (done >= 150 && Volatile.Read(ref victimServed) > 0 && Interlocked.Exchange(ref killed, 1) == 0)
            {
                cluster.Kill("gpu-c");
                killedAt.Restart();
            }

            await Task.CompletedTask;
        }, onResult: r =>
        {
            if (r.Host == "gpu-c")
            {
                Interlocked.Increment(ref victimServed);
            }
        });

        AssertAllSucceeded(cluster, load);
        Assert.True(load.ServedBy("gpu-c") > 0, "the victim served before it died");
        Assert.True(killed == 1, $"gpu-c was not killed during the load (it served {load.ServedBy("gpu-c")} of 500)");
        Console.WriteLine($"worst latency with a silo killed (the failover gap): {load.Worst.TotalMilliseconds:0} ms");
        TestContext.Current.SendDiagnosticMessage($"worst latency with a silo killed: {load.Worst.TotalMilliseconds:0} ms");

        // Membership declares the killed silo dead (status 6) in the table.
        while (await cluster.MembershipStatusAsync("gpu-c") != 6)
        {
            Assert.True(killedAt.Elapsed < TimeSpan.FromSeconds(60), "gpu-c was not declared dead within 60 s");
            await Task.Delay(200);
        }

        Console.WriteLine($"gpu-c declared dead {killedAt.Elapsed.TotalSeconds:0.0} s after the kill (counting from the end of the load)");
        await cluster.WaitForHostsAsync(2, TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task Every_silo_stopped_with_SIGTERM_and_replaced_in_turn_under_16_clients_fails_no_request()
    {
        RequirePostgres();
        string[] hosts = ["gpu-a", "gpu-b", "gpu-c"];
        await using var cluster = await ProcessCluster.CreateAsync();
        foreach (var host in hosts)
        {
            cluster.StartSilo(host);
        }

        await cluster.StartFrontAsync();
        await cluster.WaitForHostsAsync(3, TimeSpan.FromSeconds(120));

        // 16 clients send requests until every silo has been stopped (as a deploy does: SIGTERM, the process exits
        // when drained) and its replacement, under the same name, has joined.
        using var restarted = new CancellationTokenSource();
        var served = 0;
        var load = cluster.LoadAsync(50_000, 16, stop: restarted.Token, onResult: _ => Interlocked.Increment(ref served));
        var log = new List<string>();
        try
        {
            foreach (var host in hosts)
            {
                var before = Volatile.Read(ref served);
                while (Volatile.Read(ref served) < before + 50)
                {
                    Assert.False(load.IsCompleted, "the load stopped early");
                    await Task.Delay(100);
                }

                var silo = cluster.Silo(host);
                var watch = Stopwatch.StartNew();
                silo.Terminate();
                var code = await silo.WaitForExitAsync(TimeSpan.FromSeconds(120));
                Assert.True(code == 0, $"{host} exited with {code} after SIGTERM:\n{Tail(silo.Output)}");
                Assert.Contains($"GPU host {host} drained", silo.Output);

                // It left by itself: dead in the table at once, with no probes missed and no votes.
                Assert.Equal(6, await cluster.MembershipStatusAsync(host));
                log.Add($"{host} exited {watch.Elapsed.TotalSeconds:0.0} s after SIGTERM");
                await cluster.WaitForHostsAsync(2, TimeSpan.FromSeconds(30));

                cluster.StartSilo(host);
                await cluster.WaitForHostsAsync(3, TimeSpan.FromSeconds(180));
                log.Add($"{host} replaced {watch.Elapsed.TotalSeconds:0.0} s after SIGTERM");
            }
        }
        finally
        {
            await restarted.CancelAsync();
        }

        var result = await load;
        AssertAllSucceeded(cluster, result);
        Console.WriteLine($"{result.Requests.Length} requests, none failed; worst latency {result.Worst.TotalMilliseconds:0} ms; {string.Join("; ", log)}");
        TestContext.Current.SendDiagnosticMessage($"{result.Requests.Length} requests, none failed; worst latency {result.Worst.TotalMilliseconds:0} ms; {string.Join("; ", log)}");
    }

    [Fact]
    public async Task A_silo_started_during_load_joins_warms_its_models_and_receives_work()
    {
        RequirePostgres();
        await using var cluster = await ProcessCluster.CreateAsync();
        cluster.StartSilo("gpu-a");
        cluster.StartSilo("gpu-b");
        await cluster.StartFrontAsync();
        await cluster.WaitForHostsAsync(2, TimeSpan.FromSeconds(120));

        // Load runs until the new silo has joined and served some of it (at most 5,000 requests).
        using var enough = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        var servedByNew = 0;
        var started = 0;
        var load = await cluster.LoadAsync(5000, 8, async done =>
        {
            if (done == 50 && Interlocked.Exchange(ref started, 1) == 0)
            {
                cluster.StartSilo("gpu-new");
            }

            await Task.CompletedTask;
        }, enough.Token, onResult: r =>
        {
            if (r.Host == "gpu-new" && Interlocked.Increment(ref servedByNew) >= 20)
            {
                enough.Cancel();
            }
        });

        AssertAllSucceeded(cluster, load);
        Assert.Equal(3, await cluster.HostCountAsync());
        Assert.Equal(3, await cluster.MembershipStatusAsync("gpu-new"));
        using var info = System.Text.Json.JsonDocument.Parse(await cluster.Http.GetStringAsync("/info"));
        var newHost = info.RootElement.GetProperty("hosts").EnumerateArray().Single(h => h.GetProperty("name").GetString() == "gpu-new");
        Assert.Contains("sentence-transformers/all-MiniLM-L6-v2", newHost.GetProperty("loaded_models").EnumerateArray().Select(m => m.GetString()));
        Assert.True(load.ServedBy("gpu-new") > 0, $"the new silo served none of the requests after it joined ({string.Join(", ", load.Requests.GroupBy(r => r.Host).Select(g => $"{g.Key}: {g.Count()}"))})");
    }

    [Fact]
    public async Task Serving_goes_on_while_postgres_is_down_for_ten_seconds_and_membership_recovers()
    {
        RequirePostgres();
        var stop = Environment.GetEnvironmentVariable("ORLEANSGPU_TEST_PG_STOP");
        var start = Environment.GetEnvironmentVariable("ORLEANSGPU_TEST_PG_START");
        Assert.SkipWhen(string.IsNullOrEmpty(stop) || string.IsNullOrEmpty(start),
            "ORLEANSGPU_TEST_PG_STOP / ORLEANSGPU_TEST_PG_START are not set: this test cannot stop and start PostgreSQL (.ci/run sets them).");

        await using var cluster = await ProcessCluster.CreateAsync();
        cluster.StartSilo("gpu-a");
        cluster.StartSilo("gpu-b");
        await cluster.StartFrontAsync();
        await cluster.WaitForHostsAsync(2, TimeSpan.FromSeconds(120));

        var outage = Task.CompletedTask;
        var began = 0;
        var load = await cluster.LoadAsync(400, 8, async done =>
        {
            if (done == 40 && Interlocked.Exchange(ref began, 1) == 0)
            {
                outage = Task.Run(async () =>
                {
                    await Shell(stop!);
                    await Task.Delay(TimeSpan.FromSeconds(10));
                    await Shell(start!);
                });
            }

            await Task.CompletedTask;
        });
        await outage;

        AssertAllSucceeded(cluster, load);

        // Back up: membership works again, so a new silo can join.
        cluster.StartSilo("gpu-late");
        await cluster.WaitForHostsAsync(3, TimeSpan.FromSeconds(120));
        Assert.Equal(3, await cluster.MembershipStatusAsync("gpu-late"));
    }

    private static void AssertAllSucceeded(ProcessCluster cluster, LoadResult load)
    {
        var failed = load.Failed;
        Assert.True(failed.Count == 0,
            $"{failed.Count} of {load.Requests.Length} requests failed, first: {failed.FirstOrDefault()}\nfront log (end):\n{Tail(cluster.Front.Output)}");
    }

    private static string Tail(string text) => text.Length > 6000 ? text[^6000..] : text;

    private static async Task Shell(string command)
    {
        using var process = Process.Start(new ProcessStartInfo("/bin/sh", ["-c", command]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, $"'{command}' failed: {await process.StandardError.ReadToEndAsync()}");
    }
}
