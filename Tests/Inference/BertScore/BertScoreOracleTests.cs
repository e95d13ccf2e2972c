using OrleansGpu.Inference.BertScore;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Inference.BertScore;

[Collection(MiniLmCollection.Name)]
public sealed class BertScoreOracleTests(MiniLmFixture minilm)
{
    private const float Tolerance = 1e-5f;

    private static readonly string[] RunNames = ["L6_noidf", "L4_noidf", "L4_idf", "L4_noidf_rescaled"];

    public static TheoryData<string> Runs => [.. RunNames];

    [Theory]
    [MemberData(nameof(Runs))]
    public void Every_run_equals_bert_score_within_1e5(string run)
    {
        var expected = Oracles.BertScore.Runs[run];
        var result = minilm.BertScore.Score(RequestFor(run), TestContext.Current.CancellationToken);

        AssertClose(expected.P, result.Precision, "P");
        AssertClose(expected.R, result.Recall, "R");
        AssertClose(expected.F, result.F1, "F");
        Assert.Equal(expected.Hash, result.Hash);
    }

    [Fact]
    public async Task Concurrent_runs_through_the_shared_batcher_equal_bert_score_within_1e5()
    {
        // All runs at once, twice each, so that their texts share forward passes of the layer-4 graph.
        string[] runs = [.. RunNames, .. RunNames];
        var results = await Task.WhenAll(runs.Select(run => minilm.BertScore.ScoreAsync(
            RequestFor(run), cancellationToken: TestContext.Current.CancellationToken)));

        for (var i = 0; i < runs.Length; i++)
        {
            var expected = Oracles.BertScore.Runs[runs[i]];
            AssertClose(expected.P, results[i].Precision, "P");
            AssertClose(expected.R, results[i].Recall, "R");
            AssertClose(expected.F, results[i].F1, "F");
            Assert.Equal(expected.Hash, results[i].Hash);
        }
    }

    internal static BertScoreRequest RequestFor(string run)
    {
        var oracle = Oracles.BertScore;
        var request = new BertScoreRequest
        {
            Candidates = oracle.Candidates,
            References = BertScoreRequest.Single(oracle.References),
            NumLayers = run.StartsWith("L4", StringComparison.Ordinal) ? 4 : 6,
            Idf = run.Contains("_idf", StringComparison.Ordinal),
            RescaleWithBaseline = run.EndsWith("rescaled", StringComparison.Ordinal),
            Baseline = run.EndsWith("rescaled", StringComparison.Ordinal)
                ? ReadBaseline(4)
                : null,
        };
        return request;
    }

    [Fact]
    public void Several_references_per_candidate_take_the_best_score_per_metric()
    {
        var multi = Oracles.BertScore.Multi;
        var result = minilm.BertScore.Score(new BertScoreRequest
        {
            Candidates = multi.Candidates,
            References = [.. multi.ReferencesMulti.Select(r => (IReadOnlyList<string>)r)],
            NumLayers = multi.NumLayers,
        }, TestContext.Current.CancellationToken);

        AssertClose(multi.P, result.Precision, "P");
        AssertClose(multi.R, result.Recall, "R");
        AssertClose(multi.F, result.F1, "F");
    }

    private static Baseline ReadBaseline(int layer)
    {
        using var reader = new StreamReader(Oracles.BaselineFile);
        return Baseline.Parse(reader, layer, Oracles.BaselineFile);
    }

    internal static void AssertClose(float[] expected, float[] actual, string metric)
    {
        Assert.Equal(expected.Length, actual.Length);
        var worst = 0f;
        var at = -1;
        for (var i = 0; i < expected.Length; i++)
        {
            var delta = Math.Abs(expected[i] - actual[i]);
            if (delta > worst || float.IsNaN(delta))
            {
                worst = delta;
                at = i;
            }
        }

        Assert.True(worst <= Tolerance, $"{metric}: max |Δ| = {worst:E2} at pair #{at} (expected {(at >= 0 ? expected[at] : 0)}, got {(at >= 0 ? actual[at] : 0)})");
    }
}
