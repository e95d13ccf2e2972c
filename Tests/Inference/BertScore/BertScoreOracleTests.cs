using OrleansGpu.Inference.BertScore;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Inference.BertScore;

[Collection(MiniLmCollection.Name)]
public sealed class BertScoreOracleTests(MiniLmFixture minilm)
{
    private const float Tolerance = 1e-5f;

    public static TheoryData<string> Runs => ["L6_noidf", "L4_noidf", "L4_idf", "L4_noidf_rescaled"];

    [Theory]
    [MemberData(nameof(Runs))]
    public void Every_run_equals_bert_score_within_1e5(string run)
    {
        var oracle = Oracles.BertScore;
        var expected = oracle.Runs[run];
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

        var result = minilm.BertScore.Score(request, TestContext.Current.CancellationToken);

        AssertClose(expected.P, result.Precision, "P");
        AssertClose(expected.R, result.Recall, "R");
        AssertClose(expected.F, result.F1, "F");
        Assert.Equal(expected.Hash, result.Hash);
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

    private static void AssertClose(float[] expected, float[] actual, string metric)
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
