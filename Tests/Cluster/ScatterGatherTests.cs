using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using OrleansGpu.Api.Contracts;
using OrleansGpu.Api.Routing;
using OrleansGpu.Api.Scatter;
using OrleansGpu.Grains;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Cluster;

/// <summary>
/// Large requests split across the three in-process silos (real MiniLM on the CPU): each part on its own host through
/// the router, gathered in order, with the numbers of the unsplit request and of the peers.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class ScatterGatherTests(GpuClusterFixture fixture)
{
    private const string Model = "all-MiniLM-L6-v2";

    [Fact]
    public async Task A_2000_text_embed_runs_as_one_part_per_host_equals_sentence_transformers_and_shows_as_one_job()
    {
        var ct = TestContext.Current.CancellationToken;
        var cluster = await SplitCluster.StartAsync(fixture, ct);
        var oracle = Oracles.Embed;
        var texts = SplitCluster.Repeat(oracle.Texts, 2000);

        var running = cluster.Scatter.EmbedAsync(new EmbedWork(Model, texts), ct);
        JobResponse? seen = null;
        while (!running.IsCompleted)
        {
            var merged = SplitStatus.ActiveJobs(await cluster.StatusesAsync());
            if (merged.SingleOrDefault(j => j.Parts is { Count: 3 } && j.State == "running" && j.Progress > 0) is { } job)
            {
                seen ??= job;
            }

            await Task.Delay(50, ct);
        }

        var batch = await running;
        var hosts = batch.Host.Split(',');
        Assert.Equal(3, hosts.Length);
        Assert.Equal(fixture.HostNames.Order(), hosts.Order()); // each host served one part
        Assert.Equal(2000, batch.Count);
        SplitCluster.AssertEqualsRepeatedOracle(batch, oracle);

        // Equal texts in different parts, embedded on different hosts, give the same vector to the last bit.
        Assert.Equal(batch.Vector(0).ToArray(), batch.Vector(oracle.Texts.Length * 5).ToArray());

        // While it ran, /status showed it as one job of 2,000 texts whose parts ran on the three hosts.
        Assert.NotNull(seen);
        Assert.Equal(2000, seen.Items);
        Assert.Equal("embed", seen.Type);
        Assert.InRange(seen.Progress, 0.0001, 1.0);
        Assert.Equal(fixture.HostNames.Order(), seen.Parts!.Select(p => p.Host).Order());
        Assert.All(seen.Parts!, p => Assert.Equal(new JobPartOfResponse(seen.Id, p.PartOf!.Part, 3), p.PartOf));
        Assert.Equal([1, 2, 3], seen.Parts!.Select(p => p.PartOf!.Part));
        Assert.Equal(2000, seen.Parts!.Sum(p => p.Items));
        Assert.Empty(SplitStatus.ActiveJobs(await cluster.StatusesAsync()));
    }

    [Fact]
    public async Task A_1000_pair_bertscore_with_idf_runs_as_one_part_per_host_and_equals_the_unsplit_request()
    {
        var ct = TestContext.Current.CancellationToken;
        var cluster = await SplitCluster.StartAsync(fixture, ct);
        var oracle = Oracles.BertScore;
        var work = new BertScoreWork(
            Model,
            SplitCluster.Repeat(oracle.Candidates, 1000),
            SplitCluster.Single(SplitCluster.Repeat(oracle.References, 1000)),
            NumLayers: 4,
            Idf: true);

        var split = await cluster.Scatter.BertScoreAsync(work, ct);
        var whole = await fixture.Cluster.Client.GetGrain<IGpuHostGrain>(fixture.HostNames[0]).BertScoreAsync(work, ct);

        Assert.Equal(fixture.HostNames.Order(), split.Host.Split(',').Order());
        Assert.Equal(whole.Precision, split.Precision);
        Assert.Equal(whole.Recall, split.Recall);
        Assert.Equal(whole.F1, split.F1);
        Assert.Equal(whole.Hash, split.Hash);
        Assert.Equal(4, split.NumLayers);
    }

    [Fact]
    public async Task The_oracles_idf_run_split_in_three_parts_equals_bert_score()
    {
        var ct = TestContext.Current.CancellationToken;
        var cluster = await SplitCluster.StartAsync(fixture, ct, minTexts: 100);
        var oracle = Oracles.BertScore;
        var expected = oracle.Runs["L4_idf"];

        var scores = await cluster.Scatter.BertScoreAsync(
            new BertScoreWork(Model, oracle.Candidates, SplitCluster.Single(oracle.References), NumLayers: 4, Idf: true), ct);

        Assert.Equal(3, scores.Host.Split(',').Length);
        Inference.BertScore.BertScoreOracleTests.AssertClose(expected.P, scores.Precision, "P");
        Inference.BertScore.BertScoreOracleTests.AssertClose(expected.R, scores.Recall, "R");
        Inference.BertScore.BertScoreOracleTests.AssertClose(expected.F, scores.F1, "F");
        Assert.Equal(expected.Hash, scores.Hash);
    }

    [Fact]
    public async Task Cancelling_a_split_request_stops_every_part_on_its_host()
    {
        var ct = TestContext.Current.CancellationToken;
        var cluster = await SplitCluster.StartAsync(fixture, ct, minTexts: 100);

        // Long texts, so that the parts would run for tens of seconds on these shared cores.
        var texts = Enumerable.Range(0, 900).Select(i => string.Join(' ', Enumerable.Repeat($"cancel me {i} now", 45))).ToArray();
        using var client = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var running = cluster.Scatter.EmbedAsync(new EmbedWork(Model, texts), client.Token);
        await SplitCluster.WaitUntilAsync(async () =>
        {
            var statuses = await cluster.StatusesAsync();
            return statuses.Count(s => s.Jobs.Any(j => j.Part is not null && j.Progress > 0)) == 3; // every part mid-work
        });

        var cancelled = Stopwatch.StartNew();
        await client.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => running);
        await SplitCluster.WaitUntilAsync(async () => (await cluster.StatusesAsync()).All(s => s.Jobs.Count == 0), TimeSpan.FromSeconds(10));
        TestContext.Current.SendDiagnosticMessage($"every host's job table was empty {cancelled.ElapsedMilliseconds} ms after the cancel");
    }
}

/// <summary>A host killed while its part of a split request runs: the part is sent again elsewhere, and nothing is lost.</summary>
public sealed class ScatterGatherFailoverTests(GpuClusterFixture fixture) : IClassFixture<GpuClusterFixture>
{
    [Fact]
    public async Task A_host_killed_mid_request_loses_no_part()
    {
        var ct = TestContext.Current.CancellationToken;
        var cluster = await SplitCluster.StartAsync(fixture, ct, minTexts: 100);
        await cluster.Router.StartAsync(ct); // the refresh loop, which notices the host leave
        var oracle = Oracles.Embed;
        var texts = SplitCluster.Repeat(oracle.Texts, 1200);
        var victim = fixture.Cluster.GetActiveSilos().Last();
        var victimName = fixture.Name(victim);

        var running = cluster.Scatter.EmbedAsync(new EmbedWork("all-MiniLM-L6-v2", texts), ct);
        await SplitCluster.WaitUntilAsync(async () =>
            (await fixture.Cluster.Client.GetGrain<IGpuHostGrain>(victimName).GetStatusAsync()).Jobs.Any(j => j.Part is not null && j.Progress > 0));
        await fixture.Cluster.KillSiloAsync(victim);
        var batch = await running;
        await cluster.Router.StopAsync(ct);

        var hosts = batch.Host.Split(',');
        Assert.Equal(3, hosts.Length);
        Assert.DoesNotContain(victimName, hosts); // its part was served by another host
        Assert.True(cluster.Router.Retries >= 1);
        Assert.Equal(texts.Length, batch.Count);
        SplitCluster.AssertEqualsRepeatedOracle(batch, oracle);
    }
}

/// <summary>A router over the test cluster and the front's scatter-gather above it.</summary>
internal sealed record SplitCluster(GpuClusterFixture Fixture, HostRouter Router, ScatterGather Scatter)
{
    public static async Task<SplitCluster> StartAsync(GpuClusterFixture fixture, CancellationToken ct, int minTexts = 256)
    {
        var router = fixture.NewRouter(RoutingStrategy.LeastBusy);
        await router.RefreshAsync(ct);
        Assert.Equal(3, router.Hosts.Count);
        var scatter = new ScatterGather(router, Options.Create(new SplitOptions { MinTexts = minTexts }), NullLogger<ScatterGather>.Instance);
        return new SplitCluster(fixture, router, scatter);
    }

    /// <summary>What /status reads: every live host's status.</summary>
    public async Task<IReadOnlyList<HostStatus>> StatusesAsync() =>
        await Task.WhenAll(Fixture.HostNames.Select(h => Fixture.Cluster.Client.GetGrain<IGpuHostGrain>(h).GetStatusAsync()));

    public static IReadOnlyList<IReadOnlyList<string>> Single(string[] references) => [.. references.Select(r => (IReadOnlyList<string>)[r])];

    public static string[] Repeat(string[] items, int count) => [.. Enumerable.Range(0, count).Select(i => items[i % items.Length])];

    public static async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan? limit = null)
    {
        var deadline = DateTime.UtcNow + (limit ?? TimeSpan.FromSeconds(60));
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"condition not reached in {(limit ?? TimeSpan.FromSeconds(60)).TotalSeconds} s");
            await Task.Delay(20);
        }
    }

    /// <summary>Each vector of a batch of the oracle's texts repeated in order equals sentence-transformers' within 1e-5.</summary>
    public static void AssertEqualsRepeatedOracle(EmbeddingBatch batch, EmbedOracle oracle)
    {
        var worst = 0.0;
        for (var i = 0; i < batch.Count; i++)
        {
            var expected = oracle.Embeddings[i % oracle.Texts.Length];
            var actual = batch.Vector(i);
            for (var d = 0; d < expected.Length; d++)
            {
                worst = Math.Max(worst, Math.Abs(actual[d] - expected[d]));
            }
        }

        Assert.True(worst <= 1e-5, $"max |Δ| = {worst:E2}");
    }
}
