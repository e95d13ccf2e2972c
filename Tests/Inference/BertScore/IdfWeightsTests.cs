using OrleansGpu.Inference.BertScore;
using OrleansGpu.Tests.Support;

namespace OrleansGpu.Tests.Inference.BertScore;

/// <summary>
/// Idf weights computed once over a whole request's references and handed to calls that each score a part of it (as
/// the front does when it splits a request across hosts): every part scores as the whole request does.
/// </summary>
[Collection(MiniLmCollection.Name)]
public sealed class IdfWeightsTests(MiniLmFixture minilm)
{
    // Parts that start at multiples of bert_score's 64-pair matching chunk, as the front cuts them.
    private static readonly (int Start, int Count)[] Parts = [(0, 192), (192, 192), (384, 124)];

    [Fact]
    public void Parts_scored_with_the_whole_requests_idf_weights_equal_the_whole_request_and_bert_score()
    {
        var ct = TestContext.Current.CancellationToken;
        var whole = BertScoreOracleTests.RequestFor("L4_idf");
        var expected = minilm.BertScore.Score(whole, ct);
        var weights = minilm.BertScore.InverseDocumentFrequency(whole.References);

        var parts = Parts.Select(p => minilm.BertScore.Score(Part(whole, p) with { IdfWeights = weights }, ct)).ToList();

        Assert.Equal(expected.Precision, parts.SelectMany(p => p.Precision));
        Assert.Equal(expected.Recall, parts.SelectMany(p => p.Recall));
        Assert.Equal(expected.F1, parts.SelectMany(p => p.F1));
        Assert.All(parts, p => Assert.Equal(expected.Hash, p.Hash));
        var oracle = Oracles.BertScore.Runs["L4_idf"];
        BertScoreOracleTests.AssertClose(oracle.F, [.. parts.SelectMany(p => p.F1)], "F");
        BertScoreOracleTests.AssertClose(oracle.P, [.. parts.SelectMany(p => p.Precision)], "P");
    }

    [Fact]
    public void Without_them_each_part_weighs_tokens_by_its_own_references_and_scores_differently()
    {
        var ct = TestContext.Current.CancellationToken;
        var whole = BertScoreOracleTests.RequestFor("L4_idf");
        var expected = minilm.BertScore.Score(whole, ct);
        var alone = Parts.SelectMany(p => minilm.BertScore.Score(Part(whole, p), ct).F1).ToArray();

        var worst = expected.F1.Zip(alone, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(worst > 1e-3, $"parts with their own idf differ from the whole by at most {worst:E2}");
    }

    [Fact]
    public void Several_references_per_candidate_count_each_reference_as_the_whole_request_does()
    {
        var ct = TestContext.Current.CancellationToken;
        var multi = Oracles.BertScore.Multi;
        var whole = new BertScoreRequest
        {
            Candidates = multi.Candidates,
            References = [.. multi.ReferencesMulti.Select(r => (IReadOnlyList<string>)r)],
            NumLayers = multi.NumLayers,
            Idf = true,
        };
        var expected = minilm.BertScore.Score(whole, ct);
        var weights = minilm.BertScore.InverseDocumentFrequency(whole.References);

        // Two references per candidate: 32 candidates are one 64-pair chunk.
        (int, int)[] parts = [(0, 32), (32, whole.Candidates.Count - 32)];
        var scored = parts.Select(p => minilm.BertScore.Score(Part(whole, p) with { IdfWeights = weights }, ct)).ToList();

        Assert.Equal(expected.F1, scored.SelectMany(p => p.F1));
        Assert.Equal(expected.Recall, scored.SelectMany(p => p.Recall));
    }

    [Fact]
    public void A_table_read_back_weighs_every_token_as_the_weights_it_came_from()
    {
        var weights = minilm.BertScore.InverseDocumentFrequency(BertScoreRequest.Single(Oracles.BertScore.References));
        var copy = TokenWeights.FromTable([.. weights.Listed.Keys], [.. weights.Listed.Values], weights.Unlisted);

        Assert.NotEmpty(weights.Listed);
        foreach (var id in weights.Listed.Keys.Concat([0, 1, 29_999, 123_456]))
        {
            Assert.Equal(weights[id], copy[id]);
        }

        Assert.Equal((float)Math.Log(Oracles.BertScore.References.Length + 1.0), copy.Unlisted);
    }

    [Fact]
    public void A_bad_table_or_weights_without_idf_are_refused()
    {
        Assert.Throws<ArgumentException>(() => TokenWeights.FromTable([1, 2], [0.5f], 1f));
        Assert.Throws<ArgumentException>(() => TokenWeights.FromTable([1, 1], [0.5f, 0.5f], 1f));
        Assert.Throws<ArgumentException>(() => TokenWeights.FromTable([1], [float.NaN], 1f));
        var request = BertScoreOracleTests.RequestFor("L4_noidf") with { IdfWeights = TokenWeights.FromTable([1], [0.5f], 1f) };
        Assert.Throws<ArgumentException>(() => minilm.BertScore.Score(request, TestContext.Current.CancellationToken));
    }

    private static BertScoreRequest Part(BertScoreRequest whole, (int Start, int Count) part) => whole with
    {
        Candidates = [.. whole.Candidates.Skip(part.Start).Take(part.Count)],
        References = [.. whole.References.Skip(part.Start).Take(part.Count)],
    };
}
