using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using OrleansGpu.Inference.Diagnostics;
using OrleansGpu.Inference.Models;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Cluster;

/// <summary>
/// A mixed fleet in real processes on loopback (PostgreSQL membership, two <c>Silo.Gpu</c> processes, the front as a
/// client): a small host whose <c>GPU_MEMORY_BUDGET</c> is below a model's size and a big one whose budget holds it.
/// The model is served by the big host, the small one refuses it at most once (the front then knows the model's size,
/// and the small host's budget from its load report), and a model larger than both budgets is a 422
/// <c>model_too_large</c> naming its size and the larger budget, never a 5xx. The models are the real MiniLM with a
/// sparse file beside its graph that makes the host's size estimate larger (no disk used).
/// </summary>
public sealed class TooLargeRoutingTests
{
    private const string Small = "gpu-a";
    private const string Big = "gpu-b";

    [Fact]
    public async Task A_model_larger_than_one_hosts_budget_is_served_by_the_host_it_fits_and_one_larger_than_every_budget_is_a_422()
    {
        Assert.SkipUnless(ProcessCluster.BaseConnectionString is not null, ProcessCluster.SkipReason);
        var ct = TestContext.Current.CancellationToken;
        await using var cluster = await ProcessCluster.CreateAsync();

        // MiniLM's weights W: the small host holds 1.25 W, the big one 8 W; two models of about 1.5 W, one of about 9 W
        // (as the host estimates them: the linked graph for what it links to, the file beside it for its length).
        var weights = InferenceMetrics.WeightBytes(WeightFiles.Find(Path.Combine(cluster.ModelsDirectory, TestModelsFolder.CopyName))!.OnnxPath!);
        var (smallBudget, bigBudget) = (weights * 5 / 4, weights * 8);
        var large = await AddModelAsync(cluster, "acme/large", weights / 2);
        var larger = await AddModelAsync(cluster, "acme/large-too", weights / 2);
        var huge = await AddModelAsync(cluster, "acme/huge", weights * 8);
        Assert.InRange(large.Bytes, smallBudget + 1, bigBudget);
        Assert.InRange(larger.Bytes, smallBudget + 1, bigBudget);
        Assert.True(huge.Bytes > bigBudget);

        foreach (var (host, budget) in new[] { (Small, smallBudget), (Big, bigBudget) })
        {
            var env = cluster.Environment(host);
            env["GPU_MEMORY_BUDGET"] = budget.ToString(CultureInfo.InvariantCulture);
            env["GPU_WARM_DEFAULTS"] = "false";
            cluster.StartSilo(host, env);
        }

        await cluster.StartFrontAsync();
        await cluster.WaitForHostsAsync(2, TimeSpan.FromSeconds(120));

        // The first request for the model: on the big host, whichever host the front tried first.
        Assert.Equal(Big, (await EmbedAsync(cluster.Http, large.Name, ["the first request"], ct)).Host);

        // While a long request for it keeps the big host busy, the other model of that size, unknown to the front, goes
        // first to the idle small host: it refuses, and the request is served by the big host.
        // (Four requests of 100 long texts each: the front takes at most 100 texts a request here.)
        var longJobs = Enumerable.Range(0, 4).Select(j => EmbedAsync(
            cluster.Http,
            large.Name,
            [.. Enumerable.Range(0, 100).Select(i => string.Join(' ', Enumerable.Repeat($"keeping the big host busy {j} {i}", 12)))],
            ct)).ToList();
        await Task.Delay(TimeSpan.FromMilliseconds(300), ct);
        Assert.False(longJobs.Any(j => j.IsCompleted), "a long request ended before the other model's was sent: nothing kept the big host busy");
        var retried = await EmbedAsync(cluster.Http, larger.Name, ["refused by the small host first"], ct);
        Assert.Equal(Big, retried.Host);
        Assert.Equal(1, Refusals(cluster, Small, larger.Name));
        Assert.All(await Task.WhenAll(longJobs), j => Assert.Equal(Big, j.Host));

        // Many requests for both: all served, all by the big host, and the small host is asked for neither again.
        var results = await Task.WhenAll(Enumerable.Range(0, 8).Select(async client =>
        {
            var hosts = new List<string>();
            for (var i = 0; i < 5; i++)
            {
                var model = (client + i) % 2 == 0 ? large.Name : larger.Name;
                hosts.Add((await EmbedAsync(cluster.Http, model, [$"client {client} request {i}"], ct)).Host);
            }

            return hosts;
        }));
        Assert.All(results.SelectMany(h => h), host => Assert.Equal(Big, host));
        Assert.InRange(Refusals(cluster, Small, large.Name), 0, 1);
        Assert.Equal(1, Refusals(cluster, Small, larger.Name));
        Assert.Equal(0, Refusals(cluster, Big, large.Name) + Refusals(cluster, Big, larger.Name));

        // Larger than every budget: a 422 naming the model's size and the largest budget, twice; the second asks no host.
        for (var attempt = 0; attempt < 2; attempt++)
        {
            using var response = await cluster.Http.PostAsJsonAsync("/embed", new { texts = new[] { "too large for all" }, model = huge.Name }, ct);
            var body = await response.Content.ReadAsStringAsync(ct);
            Assert.True(response.StatusCode == HttpStatusCode.UnprocessableEntity, $"{(int)response.StatusCode} {body}");
            var problem = JsonNode.Parse(body)!;
            Assert.Equal("model_too_large", problem["code"]!.GetValue<string>());
            var detail = problem["detail"]!.GetValue<string>();
            Assert.Contains(huge.Name, detail);
            Assert.Contains($"{huge.Bytes} bytes", detail);
            Assert.Contains($"{bigBudget} bytes", detail);
            Assert.Contains(Big, detail);
            Assert.Contains("GPU_MEMORY_BUDGET", detail);
        }

        Assert.Equal(1, Refusals(cluster, Small, huge.Name) + Refusals(cluster, Big, huge.Name));
    }

    /// <summary>A copy of MiniLM named <paramref name="name"/> (files linked) with <paramref name="extra"/> bytes of sparse file beside its graph; its size as a host estimates it.</summary>
    private static async Task<(string Name, long Bytes)> AddModelAsync(ProcessCluster cluster, string name, long extra)
    {
        var onnx = await TestModelsFolder.AddLinkedCopyAsync(cluster.ModelsDirectory, name, extra);
        return (name, InferenceMetrics.WeightBytes(onnx));
    }

    private static async Task<(string Host, int Count)> EmbedAsync(HttpClient http, string model, string[] texts, CancellationToken ct)
    {
        using var response = await http.PostAsJsonAsync("/embed", new { texts, model }, ct);
        var body = await response.Content.ReadAsStringAsync(ct);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{model}: {(int)response.StatusCode} {body}");
        return (response.Headers.GetValues("X-Gpu-Host").Single(), JsonNode.Parse(body)!["embeddings"]!.AsArray().Count);
    }

    /// <summary>How many times the front logged that <paramref name="host"/> refused <paramref name="model"/> as larger than its budget.</summary>
    private static int Refusals(ProcessCluster cluster, string host, string model) =>
        Regex.Count(cluster.Front.Output, $"GPU host {Regex.Escape(host)} cannot hold {Regex.Escape(model)} ");
}
